"""nnocc_reconstruct_shapes: rebuild one structure of each mask in a folder from N cubes of K voxels per
edge (seed 004): the cubes' positions (JSON, physical mm), the reconstruction at the input's geometry,
and Dice / ASD / HD95 against the input (summary.json)."""
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.io.dataset_json import load_dataset_json
from nnocc.shape.latent_fit import LatentFit
from nnocc.shape.reconstruct import CubeBudget
from nnocc.shape.run import reconstruct_folder
from nnocc.shape.samplers import SAMPLERS
from nnocc.shape.store import shape_model_folder
from nnocc.utils.errors import NnoccError


def build():
    p = common.parser(__doc__)
    common.add_shape_model(p, "masks: references or nnocc's predictions")
    p.add_argument("--sampler", default="farthest_point", choices=sorted([*SAMPLERS, "learned"]),
                   help="learned: the sampler nnocc_train_patch_sampler trained for these N and K")
    p.add_argument("-n", "--cubes", type=int, default=8, help="N cubes per component")
    p.add_argument("-k", "--edge", type=int, default=11, help="K voxels per cube edge, at the model's spacing")
    p.add_argument("-t", "--latent_steps", type=int, default=100, help="T: steps fitting the shape code")
    p.add_argument("--seed", type=int, default=0)
    return p


def main_args(args):
    paths = dataset_paths(args.dataset)
    summary = reconstruct_folder(shape_model_folder(paths.results, args.structure, args.fold),
                                 load_dataset_json(paths.raw / "dataset.json"), Path(args.input_folder),
                                 Path(args.output_folder), args.sampler, CubeBudget(args.cubes, args.edge),
                                 LatentFit(steps=args.latent_steps), args.seed)
    mean = summary["mean"]
    print(f"{len(summary['cases'])} reconstructed: Dice {mean['dice']:.4f}, ASD {mean['assd']:.3f} mm, "
          f"HD95 {mean['hd95']:.3f} mm")
    if summary["failed"]:
        raise NnoccError(f"{len(summary['failed'])} case(s) failed, the others are done: " + "; ".join(summary["failed"]))


main = common.entry(build, main_args)
