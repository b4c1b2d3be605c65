"""nnocc_convert_kits23: the official KiTS23 folder -> Dataset023_KiTS2023 (raw format, challenge regions)."""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import data_folders
from nnocc.dataset_conversion.kits23 import convert_kits23


def build():
    p = common.parser(__doc__)
    p.add_argument("kits23_folder", help="the folder holding case_00000/imaging.nii.gz, segmentation.nii.gz, ...")
    p.add_argument("-d", "--dataset_id", type=int, default=23)
    p.add_argument("-o", "--output_folder", default=None, help="raw folder (default: $nnocc_raw)")
    return p


def main_args(args):
    print(convert_kits23(Path(args.kits23_folder), Path(args.output_folder or data_folders().raw), args.dataset_id))


main = common.entry(build, main_args)
