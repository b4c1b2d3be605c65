"""nnocc_evaluate_folder: Dice, IoU, Surface Dice, HD95, ASSD and volumes of a folder of predictions."""
from pathlib import Path

from nnocc.cli import common
from nnocc.evaluation.evaluate_folder import KITS23_CLASSES, evaluate_folder, evaluation_settings
from nnocc.io.dataset_json import load_dataset_json


def build():
    p = common.parser(__doc__)
    p.add_argument("reference_folder")
    p.add_argument("prediction_folder")
    p.add_argument("-djfile", "--dataset_json", required=True, help="the dataset.json of the labels")
    p.add_argument("-o", "--output_file", default=None, help="default: <prediction_folder>/summary.json")
    p.add_argument("--tolerance_mm", type=float, nargs="+", default=[1.0], help="Surface Dice tolerance(s)")
    p.add_argument("--empty_is_one", action="store_true",
                   help="both empty counts as Dice 1 (challenge convention) instead of NaN (excluded)")
    p.add_argument("--kits23", action="store_true",
                   help=f"KiTS23's definitions: regions {[c[0] for c in KITS23_CLASSES]}, their tolerances, "
                        f"empty cases as 1")
    p.add_argument("--chill", action="store_true", help="allow references without a prediction")
    common.add_processes(p)
    return p


def main_args(args):
    description = load_dataset_json(args.dataset_json)
    settings = evaluation_settings(description, args.tolerance_mm, args.empty_is_one, args.kits23)
    output = Path(args.output_file) if args.output_file else None
    summary = evaluate_folder(Path(args.reference_folder), Path(args.prediction_folder), settings,
                              description.file_ending, output, args.num_processes, args.chill)
    for name, values in summary["mean"].items():
        print(f"{name:20s} Dice {values['dice']:.4f}  Surface Dice {values.get('surface_dice', float('nan')):.4f}  "
              f"HD95 {values.get('hd95', float('nan')):.2f} mm")
    if "kits23" in summary:
        print(f"KiTS23: mean Dice {summary['kits23']['mean_dice']:.4f}, "
              f"mean Surface Dice {summary['kits23']['mean_surface_dice']:.4f}")


main = common.entry(build, main_args)
