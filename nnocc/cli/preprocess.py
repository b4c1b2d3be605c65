"""nnocc_preprocess: crop, resample and normalise every training case as the plans say."""
from nnocc.cli import common
from nnocc.preprocessing.run import run_preprocessing_for_plans


def add_preprocessing(p):
    p.add_argument("-c", "--configurations", nargs="*", default=None, help="configurations (default: all planned)")
    p.add_argument("--clean", action="store_true", help="redo cases that are already preprocessed")
    common.add_processes(p)


def build():
    p = common.parser(__doc__)
    common.add_datasets(p)
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    add_preprocessing(p)
    return p


def main_args(args):
    def preprocess(paths):
        for folder in run_preprocessing_for_plans(paths, args.plans_name, args.configurations, args.num_processes,
                                                  args.clean):
            print(folder)
    common.for_each_dataset(args.datasets, preprocess)


main = common.entry(build, main_args)
