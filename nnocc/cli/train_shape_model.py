"""nnocc_train_shape_model: the implicit shape model of one structure (seed 004), on a fold's training cases."""
from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.shape.run import train_structure
from nnocc.shape.training import ShapeTraining


def build():
    p = common.parser(__doc__)
    common.add_dataset(p)
    p.add_argument("-s", "--structure", required=True, help="a label or region name of dataset.json (kidney)")
    p.add_argument("-f", "--fold", type=int, default=0, help="0-4: seed 004's 70/10/20 split by case")
    p.add_argument("--spacing_mm", type=float, default=1.5, help="the crops' isotropic spacing (seed 004: 1.5 mm)")
    p.add_argument("--steps", type=int, default=ShapeTraining.steps)
    p.add_argument("--minutes", type=float, default=None, help="stop after this many minutes")
    p.add_argument("--include_cut_shapes", action="store_true",
                   help="also learn from structures the scan's edge cuts (left out by default, as seed 004)")
    p.add_argument("--batch_size", type=int, default=ShapeTraining.batch_size, help="shapes per step")
    p.add_argument("--points_per_shape", type=int, default=ShapeTraining.points_per_shape)
    p.add_argument("--latent_lr", type=float, default=ShapeTraining.latent_learning_rate,
                   help="the training codes' rate; on a short budget (a CPU) 1e-2 with 32 shapes of 1024 points "
                        "per step lets every code move as far as a test-time fit will (benchmarks/readme.md)")
    p.add_argument("--seed", type=int, default=ShapeTraining.seed)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main_args(args):
    settings = ShapeTraining(steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                             points_per_shape=args.points_per_shape, latent_learning_rate=args.latent_lr, seed=args.seed)
    folder = train_structure(dataset_paths(args.dataset), args.structure, args.fold, args.spacing_mm, settings,
                             not args.quiet, whole_only=not args.include_cut_shapes)
    print(folder)


main = common.entry(build, main_args)
