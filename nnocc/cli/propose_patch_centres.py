"""nnocc_propose_patch_centres: seed 004's learned sampler as a training patch sampler.  Its cube
centres on every preprocessed case's label map are written beside the preprocessed data, with a plans
variant (<plans>_proposed) that centres the label sampler's share of the patches on them; train that
with nnocc_train DATASET CONFIGURATION FOLD -p <plans>_proposed."""
from nnocc.cli import common
from nnocc.cli.environment import dataset_paths
from nnocc.shape.training_centres import propose_training_centres


def build():
    p = common.parser(__doc__)
    common.add_dataset(p)
    p.add_argument("configuration", help="e.g. 3d_occ")
    p.add_argument("-s", "--structure", required=True, help="the structure whose shape model and sampler to use")
    p.add_argument("-f", "--fold", type=int, default=0, help="the shape model's fold (train the same fold)")
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    p.add_argument("-n", "--cubes", type=int, default=8, help="N, as the sampler was trained")
    p.add_argument("-k", "--edge", type=int, default=11, help="K, as the sampler was trained")
    p.add_argument("--repeats", type=int, default=4, help="draws of N centres per structure and case")
    p.add_argument("--share", type=float, default=None,
                   help="share of patches on the proposals (default: the label sampler's share)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p


def main_args(args):
    written = propose_training_centres(dataset_paths(args.dataset), args.plans_name, args.configuration,
                                       args.structure, args.fold, args.cubes, args.edge, args.repeats, args.share,
                                       args.seed, not args.quiet)
    print(f"proposed centres: {written['proposals']}\nplans: {written['plans']} "
          f"(nnocc_train {args.dataset} {args.configuration} {args.fold} -p {written['plans']})")


main = common.entry(build, main_args)
