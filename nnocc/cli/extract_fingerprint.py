"""nnocc_extract_fingerprint: check a raw dataset and write dataset_fingerprint.json."""
from nnocc.cli import common
from nnocc.fingerprint.run import run_fingerprint_extraction


def build():
    p = common.parser(__doc__)
    common.add_datasets(p)
    common.add_processes(p)
    p.add_argument("--clean", action="store_true", help="recompute even if a fingerprint exists")
    return p


def main_args(args):
    def extract(paths):
        run_fingerprint_extraction(paths, args.num_processes, args.clean)
        print(paths.fingerprint_file)
    common.for_each_dataset(args.datasets, extract)


main = common.entry(build, main_args)
