"""nnocc_train_patch_sampler: seed 004's learned sampler of N cubes of K voxels per edge, trained against a
structure's shape model (nnocc_train_shape_model first)."""
from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.shape.run import train_structure_sampler
from nnocc.shape.sampler_training import SamplerTraining


def build():
    p = common.parser(__doc__)
    common.add_dataset(p)
    p.add_argument("-s", "--structure", required=True)
    p.add_argument("-f", "--fold", type=int, default=0)
    p.add_argument("-n", "--cubes", type=int, default=8, help="N cubes per shape")
    p.add_argument("-k", "--edge", type=int, default=11, help="K voxels per cube edge")
    p.add_argument("-t", "--latent_steps", type=int, default=100,
                   help="T unrolled steps during training (the thesis: 100; fewer on a CPU)")
    p.add_argument("--epochs", type=int, default=SamplerTraining.epochs)
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    p.add_argument("--check_points", type=int, default=None,
                   help="voxels per shape scoring the reconstruction (default: every voxel of the crop)")
    p.add_argument("--fit_points", type=int, default=None,
                   help="cube voxels per unrolled step (default: all; a subset makes CPU training affordable)")
    p.add_argument("--seed", type=int, default=SamplerTraining.seed)
    p.add_argument("--quiet", action="store_true")
    return p


def main_args(args):
    settings = SamplerTraining(count=args.cubes, edge=args.edge, latent_steps=args.latent_steps, epochs=args.epochs,
                               minutes=args.minutes, check_points=args.check_points, fit_points=args.fit_points,
                               seed=args.seed)
    print(train_structure_sampler(dataset_paths(args.dataset), args.structure, args.fold, settings, not args.quiet))


main = common.entry(build, main_args)
