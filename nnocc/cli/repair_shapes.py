"""nnocc_repair_shapes: a structure's shape model as a shape prior on predicted label maps (seed 004's
auto-decoder).  Per component, a shape code is fitted to the voxels far from the predicted surface and
the model redraws the voxels near it (--mode band) or the whole component (--mode replace); the
output has each input's geometry, and repair_summary.json says what changed."""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.io.dataset_json import load_dataset_json
from nnocc.shape.repair import REPAIR_MODES, RepairSettings
from nnocc.shape.run import repair_folder
from nnocc.shape.store import shape_model_folder
from nnocc.utils.errors import NnoccError


def build():
    p = common.parser(__doc__)
    common.add_shape_model(p, "predicted label maps")
    p.add_argument("--mode", default=RepairSettings.mode, choices=REPAIR_MODES)
    p.add_argument("--margin_mm", type=float, default=RepairSettings.trusted_margin_mm,
                   help="voxels farther than this from the predicted surface are trusted")
    p.add_argument("-t", "--latent_steps", type=int, default=RepairSettings.latent_steps)
    p.add_argument("--seed", type=int, default=RepairSettings.seed)
    return p


def main_args(args):
    paths = dataset_paths(args.dataset)
    settings = RepairSettings(mode=args.mode, trusted_margin_mm=args.margin_mm, latent_steps=args.latent_steps,
                              seed=args.seed)
    summary = repair_folder(shape_model_folder(paths.results, args.structure, args.fold),
                            load_dataset_json(paths.raw / "dataset.json"), Path(args.input_folder),
                            Path(args.output_folder), settings)
    changed = sum(c["added"] + c["removed"] for parts in summary["cases"].values() for c in parts)
    print(f"{len(summary['cases'])} repaired, {changed} voxels changed: {args.output_folder}")
    if summary["failed"]:
        raise NnoccError(f"{len(summary['failed'])} case(s) failed, the others are done: " + "; ".join(summary["failed"]))


main = common.entry(build, main_args)
