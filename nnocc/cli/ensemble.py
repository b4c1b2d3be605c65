"""nnocc_ensemble: average saved probabilities of several prediction folders and write label maps."""
from pathlib import Path

from nnocc.cli import common
from nnocc.ensembling.ensemble import ensemble_folders


def build():
    p = common.parser(__doc__)
    p.add_argument("-i", "--inputs", nargs="+", required=True, help="folders predicted with --save_probabilities")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--save_probabilities", action="store_true", help="also write the averaged probabilities")
    common.add_processes(p)
    return p


def main_args(args):
    done = ensemble_folders([Path(f) for f in args.inputs], Path(args.output), args.num_processes,
                            args.save_probabilities)
    print(f"ensembled {len(done)} case(s) into {args.output}")


main = common.entry(build, main_args)
