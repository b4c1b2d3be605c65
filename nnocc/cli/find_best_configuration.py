"""nnocc_find_best_configuration: best configuration or ensemble on cross-validation, its
postprocessing, and the commands to run it on new data."""
from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.model_selection.crossval import TrainedModel
from nnocc.model_selection.find_best import find_best_configuration


def build():
    p = common.parser(__doc__)
    common.add_dataset(p)
    p.add_argument("-c", "--configurations", nargs="+", default=None,
                   help="default: every configuration of the plans (those trained are compared)")
    p.add_argument("-p", "--plans_names", nargs="+", default=["nnoccPlans"])
    p.add_argument("-tr", "--trainers", nargs="+", default=["nnoccTrainer"])
    p.add_argument("-f", "--folds", nargs="+", default=["0", "1", "2", "3", "4"])
    p.add_argument("--metric", default="dice", help="dice, iou, surface_dice (higher is better) or hd95, assd")
    p.add_argument("--disable_ensembling", action="store_true")
    common.add_processes(p)
    return p


def main_args(args):
    paths = dataset_paths(args.dataset)
    candidates = [TrainedModel(c, p, t) for p in args.plans_names
                  for c in (args.configurations or common.planned_configurations(paths, p)) for t in args.trainers]
    find_best_configuration(paths, candidates, args.folds, args.metric, not args.disable_ensembling,
                                   args.num_processes)
    print((paths.results / "inference_instructions.txt").read_text())


main = common.entry(build, main_args)
