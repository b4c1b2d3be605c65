"""nnocc_apply_postprocessing: apply postprocessing.json (connected components) to a folder of label maps."""
from pathlib import Path

from nnocc.cli import common
from nnocc.postprocessing.apply import apply_to_folder
from nnocc.postprocessing.components import PostprocessingPlan


def build():
    p = common.parser(__doc__)
    p.add_argument("-i", "--input", required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("-pp", "--postprocessing_file", required=True)
    p.add_argument("--file_ending", default=".nii.gz")
    common.add_processes(p)
    return p


def main_args(args):
    plan = PostprocessingPlan.load(args.postprocessing_file)
    done = apply_to_folder(Path(args.input), Path(args.output), plan, args.file_ending, args.num_processes)
    print(f"postprocessed {len(done)} case(s) into {args.output}")


main = common.entry(build, main_args)
