"""nnocc_demo: the whole pipeline on a generated KiTS-like CT dataset (no downloads), with a table
of Dice and Surface Dice and overlay pictures at the end.  Running it again reuses what is done."""
from nnocc.cli import common
from nnocc.cli.environment import data_folders
from nnocc.demo import DemoSettings, format_table, run_demo


def build():
    p = common.parser(__doc__)
    p.add_argument("--dataset_id", type=int, default=900)
    p.add_argument("--budget_minutes", type=float, default=DemoSettings.budget_minutes,
                   help="training time (the rest takes about 2 minutes on 2 cores)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--num_training", type=int, default=20)
    p.add_argument("--num_test", type=int, default=5)
    p.add_argument("--disable_tta", action="store_true")
    common.add_processes(p, default=2)
    return p


def main_args(args):
    settings = DemoSettings(args.dataset_id, args.budget_minutes, args.device, args.num_training, args.num_test,
                            not args.disable_tta, args.num_processes)
    result = run_demo(data_folders(), settings)
    print(format_table(result))
    return common.EXIT_ERROR if result["failures"] else 0


main = common.entry(build, main_args)
