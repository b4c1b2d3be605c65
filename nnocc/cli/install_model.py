"""nnocc_install_pretrained_model_from_zip: install a model zip into nnocc_results, after checking it."""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import data_folders
from nnocc.model_sharing.archive import install_model


def build():
    p = common.parser(__doc__)
    p.add_argument("zip_file")
    p.add_argument("--overwrite", action="store_true", help="replace an installed model of the same name")
    return p


def main_args(args):
    for folder in install_model(Path(args.zip_file), data_folders().results, args.overwrite):
        print(folder)


main = common.entry(build, main_args)
