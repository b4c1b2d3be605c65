"""nnocc_plan_experiment: plans (spacing, patch, batch, points, architecture, MISE) from the fingerprint."""
from nnocc.cli import common
from nnocc.planning.run import run_planning


def add_planning(p):
    p.add_argument("--gpu_memory_target", type=float, default=8.0, help="GB of accelerator memory to plan for")
    p.add_argument("-pl", "--planner", default="OccupancyPlanner",
                   help="planner class: a built-in name, an entry point, or module:ClassName")
    p.add_argument("--plans_name", default=None, help="name of the plans file (default nnoccPlans)")


def build():
    p = common.parser(__doc__)
    common.add_datasets(p)
    add_planning(p)
    return p


def main_args(args):
    def plan(paths):
        plans = run_planning(paths, args.planner, args.gpu_memory_target, args.plans_name)
        print(paths.plans_file(plans.plans_name))
        print(common.describe_plans(plans))
    common.for_each_dataset(args.datasets, plan)


main = common.entry(build, main_args)
