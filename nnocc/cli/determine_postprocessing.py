"""nnocc_determine_postprocessing: choose connected-component postprocessing on cross-validation.

Either ``-d DATASET -c CONFIG [-f folds]`` (merges the folds' validation predictions) or
``-i PREDICTIONS -ref REFERENCES -djfile dataset.json``.
"""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.io.dataset_json import load_dataset_json
from nnocc.model_selection.crossval import TrainedModel, merge_validation
from nnocc.model_selection.find_best import smallest_structure_mm
from nnocc.postprocessing.determine import determine_postprocessing
from nnocc.utils.errors import NnoccError


def build():
    p = common.parser(__doc__)
    p.add_argument("-d", "--dataset", default=None)
    p.add_argument("-c", "--configuration", default=None, help="needed when the plans hold several")
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    p.add_argument("-tr", "--trainer", default="nnoccTrainer")
    p.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"])
    p.add_argument("-i", "--input", default=None, help="predictions (instead of -d)")
    p.add_argument("-ref", "--reference", default=None, help="reference label maps (with -i)")
    p.add_argument("-djfile", "--dataset_json", default=None, help="dataset.json (with -i)")
    p.add_argument("--smallest_structure_mm", type=float, default=None,
                   help="with -i: size of the smallest structure (default: no size filter)")
    common.add_processes(p)
    return p


def main_args(args):
    if args.input:
        if not (args.reference and args.dataset_json):
            raise NnoccError("-i needs -ref and -djfile")
        description = load_dataset_json(args.dataset_json)
        predictions, references = Path(args.input), Path(args.reference)
        smallest = args.smallest_structure_mm if args.smallest_structure_mm is not None else float("inf")
    else:
        if not args.dataset:
            raise NnoccError("give -d DATASET (or -i/-ref/-djfile)")
        paths = dataset_paths(args.dataset)
        description = load_dataset_json(paths.dataset_json)
        model = TrainedModel(common.resolve_configuration(paths, args.plans_name, args.configuration),
                             args.plans_name, args.trainer)
        predictions = merge_validation(model.folder(paths), args.folds, description.file_ending)
        references = paths.preprocessed / "gt_segmentations"
        smallest = smallest_structure_mm(paths)
    plan = determine_postprocessing(references, predictions, description, smallest, predictions, args.num_processes)
    print(f"mean Dice {plan.baseline_dice:.4f} -> {plan.final_dice:.4f} with "
          f"{'; '.join(s.describe() for s in plan.steps) or 'no postprocessing'}")
    print(predictions / "postprocessing.json")


main = common.entry(build, main_args)
