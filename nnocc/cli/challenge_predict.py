"""nnocc_challenge_predict: the challenge container's entry point (KiTS23 grand-challenge layout)."""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import data_folders, prepare_allocator_for_prediction
from nnocc.inference.challenge import installed_model, predict_challenge


def build():
    p = common.parser(__doc__)
    p.add_argument("--input_root", default="/input", help="reads <input_root>/images/ct/*.mha")
    p.add_argument("--output_root", default="/output", help="writes <output_root>/images/kidney-tumor-and-cyst/*.mha")
    p.add_argument("-m", "--model_folder", default=None, help="default: the one model installed in $nnocc_results")
    p.add_argument("-device", "--device", default=None, choices=("cpu", "cuda"), help="default: cuda when present")
    p.add_argument("--disable_tta", action="store_true")
    common.add_low_memory(p)          # a container under a memory cap is where it matters most
    return p


def main_args(args):
    prepare_allocator_for_prediction(args.low_memory)
    model = Path(args.model_folder) if args.model_folder else installed_model(data_folders().results)
    for path in predict_challenge(Path(args.input_root), Path(args.output_root), model, args.device,
                                  not args.disable_tta):
        print(path)


main = common.entry(build, main_args)
