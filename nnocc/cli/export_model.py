"""nnocc_export_model_to_zip: plans, dataset.json, fingerprint, checkpoints and postprocessing in one zip."""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.model_sharing.archive import export_model


def build():
    p = common.parser(__doc__)
    common.add_dataset(p)
    p.add_argument("-c", "--configuration", default=None, help="needed when the plans hold several")
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    p.add_argument("-tr", "--trainer", default="nnoccTrainer")
    p.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"])
    p.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth")
    p.add_argument("-pp", "--postprocessing_file", default=None,
                   help="postprocessing.json to ship (default: the model's cross-validation one, if any)")
    p.add_argument("-o", "--output", required=True)
    return p


def main_args(args):
    paths = dataset_paths(args.dataset)
    configuration = common.resolve_configuration(paths, args.plans_name, args.configuration)
    model = paths.model_folder(configuration, args.plans_name, args.trainer)
    postprocessing = Path(args.postprocessing_file) if args.postprocessing_file else None
    if postprocessing is None:
        found = sorted(model.glob("crossval_results_folds_*/postprocessing.json"))
        postprocessing = found[-1] if found else None
    members = export_model(model, args.folds, Path(args.output), args.checkpoint, postprocessing)
    print(f"{args.output}: {len(members)} files")


main = common.entry(build, main_args)
