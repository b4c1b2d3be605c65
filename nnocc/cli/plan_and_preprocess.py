"""nnocc_plan_and_preprocess: fingerprint, plans and preprocessed data in one go."""
from nnocc.cli import common
from nnocc.cli.plan_experiment import add_planning
from nnocc.cli.preprocess import add_preprocessing
from nnocc.fingerprint.run import run_fingerprint_extraction
from nnocc.planning.run import run_planning
from nnocc.preprocessing.run import run_preprocessing_for_plans


def build():
    p = common.parser(__doc__)
    common.add_datasets(p)
    add_planning(p)
    add_preprocessing(p)
    return p


def main_args(args):
    common.for_each_dataset(args.datasets, lambda paths: plan_and_preprocess(paths, args))


def plan_and_preprocess(paths, args) -> None:
    run_fingerprint_extraction(paths, args.num_processes, args.clean)
    plans = run_planning(paths, args.planner, args.gpu_memory_target, args.plans_name)
    folders = run_preprocessing_for_plans(paths, plans.plans_name, args.configurations, args.num_processes, args.clean)
    print(paths.plans_file(plans.plans_name))
    print(common.describe_plans(plans))
    for folder in folders:
        print(folder)


main = common.entry(build, main_args)
