"""nnocc_preprocess: crop, resample and normalise every training case as the plans say."""
from nnocc.cli import common
from nnocc.paths import dataset_paths
from nnocc.preprocessing.run import run_preprocessing_for_plans


def add_preprocessing(p):
    p.add_argument("-c", "--configurations", nargs="*", default=None, help="configurations (default: all planned)")
    p.add_argument("--clean", action="store_true", help="redo cases that are already preprocessed")
    common.add_processes(p)


def build():
    p = common.parser(__doc__)
    common.add_dataset(p)
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    add_preprocessing(p)
    return p


def main_args(args):
    for folder in run_preprocessing_for_plans(dataset_paths(args.dataset), args.plans_name, args.configurations,
                                              args.num_processes, args.clean):
        print(folder)


main = common.entry(build, main_args)
