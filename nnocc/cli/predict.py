"""nnocc_predict: segment every case of a folder with a trained configuration (MISE, fold ensemble, TTA)."""
import logging
import sys
from pathlib import Path

from nnocc.cli import common
from nnocc.cli.environment import dataset_paths, prepare_allocator_for_prediction
from nnocc.inference.batch import predict_folder
from nnocc.inference.meshes import MESH_FORMATS
from nnocc.inference.mise import CHILDREN, DEFAULT_CHILDREN
from nnocc.inference.predictor import InferenceSettings, Predictor
from nnocc.utils.errors import NnoccError

logger = logging.getLogger(__name__)


def add_model(p):
    p.add_argument("-d", "--dataset", default=None, help="dataset id or name (or give -m)")
    p.add_argument("-c", "--configuration", default=None, help="needed when the plans hold several")
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    p.add_argument("-tr", "--trainer", default="nnoccTrainer")
    p.add_argument("-m", "--model_folder", default=None, help="a trained model folder (instead of -d/-c/-p/-tr)")
    p.add_argument("-f", "--folds", nargs="+", default=None, help="folds to ensemble (default: all that exist)")
    p.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth")


def model_folder(args):
    if args.model_folder:
        return args.model_folder
    if args.dataset is None:
        raise NnoccError("give -d DATASET or -m MODEL_FOLDER")
    paths = dataset_paths(args.dataset)
    configuration = common.resolve_configuration(paths, args.plans_name, args.configuration)
    return paths.model_folder(configuration, args.plans_name, args.trainer)


def add_inference(p):
    p.add_argument("--output_spacing", type=float, nargs="+", default=None,
                   help="mm (one value or z y x); default: the input's own grid")
    p.add_argument("--disable_tta", action="store_true", help="no mirroring (8x faster, slightly less accurate)")
    p.add_argument("--max_points_per_batch", type=int, default=None,
                   help="decoder points per call (default: as many as keep a call's tensors within 32 MB on a "
                        "CPU, where smaller calls are faster and lighter, at most 16384; 1 GB and 65536 on a GPU)")
    p.add_argument("--stitching", choices=("nearest", "gaussian"), default=None, help="default: the plan's")
    p.add_argument("--tile_cache_mb", type=float, default=2048.0,
                   help="memory for encoded tiles; Gaussian stitching wants eight tiles' worth")
    seeding = p.add_mutually_exclusive_group()
    seeding.add_argument("--seed_from_aux", dest="seed_from_aux", action="store_const", const=True, default=None,
                         help="start MISE from the auxiliary voxel prediction (OSS-Net's faster mode; the "
                              "3d_ossnet plans' default)")
    seeding.add_argument("--no_seed_from_aux", dest="seed_from_aux", action="store_const", const=False,
                         help="evaluate MISE's coarse lattice instead (the original MISE)")
    p.add_argument("--no_refinement", action="store_true", help="skip the second pass around small structures")
    p.add_argument("--dense", action="store_true", help="query every output voxel (a reference for MISE)")
    p.add_argument("--coarse_spacing_mm", type=float, default=None,
                   help="MISE's coarse lattice (default: the plan's, no coarser than the smallest structure); "
                        "coarser is faster and risks structures smaller than it")
    p.add_argument("--aux_hint_factor", type=float, default=1.0,
                   help="MISE starts on a lattice this many times coarser than the plan's, and the auxiliary voxel "
                        "head, read on the plan's lattice, marks where the decoder must still look (models with an "
                        "auxiliary head; 1: MISE starts on the plan's lattice)")
    p.add_argument("--mise_children", choices=CHILDREN, default=DEFAULT_CHILDREN,
                   help="which children of an active MISE cell are refined further: changing (the default: those "
                        "whose own corners disagree or are unsure, as in Occupancy Networks) or all (the whole "
                        "cell down to the voxel: more queries for the same agreement with dense, as measured)")
    common.add_low_memory(p)
    p.add_argument("--uncertainty_margin", type=float, default=None,
                   help="MISE also refines cells whose decision is within this margin of changing (default: the "
                        "plan's); smaller is faster on an unsure model and trusts its corners more")
    p.add_argument("-device", "--device", default="cpu", choices=("cpu", "cuda", "mps"))


def inference_settings(args, keep_probabilities: bool) -> InferenceSettings:
    if args.output_spacing is not None and len(args.output_spacing) not in (1, 3):
        raise SystemExit("error: --output_spacing takes one value or three (z y x)")
    if args.max_points_per_batch is not None and args.max_points_per_batch < 1:
        raise SystemExit(f"error: --max_points_per_batch must be at least 1, got {args.max_points_per_batch}")
    if args.aux_hint_factor < 1:
        raise SystemExit(f"error: --aux_hint_factor must be at least 1, got {args.aux_hint_factor:g}")
    return InferenceSettings(tta=not args.disable_tta, output_spacing=args.output_spacing,
                             keep_probabilities=keep_probabilities, max_points_per_batch=args.max_points_per_batch,
                             stitching=args.stitching, seed_from_aux=args.seed_from_aux,
                             refine=not args.no_refinement, dense=args.dense, device=args.device,
                             tile_cache_mb=args.tile_cache_mb, coarse_spacing_mm=args.coarse_spacing_mm,
                             uncertainty_margin=args.uncertainty_margin, hint_factor=args.aux_hint_factor,
                             mise_children=args.mise_children)


def build():
    p = common.parser(__doc__)
    p.add_argument("-i", "--input", required=True, help="folder of <case>_0000<ending> images")
    p.add_argument("-o", "--output", required=True)
    add_model(p)
    add_inference(p)
    p.add_argument("--save_probabilities", action="store_true", help="also write <case>.npz and <case>.json")
    p.add_argument("--mesh", nargs="?", const="vtk", choices=MESH_FORMATS, default=None,
                   help="also write a surface mesh per class (vtk or stl, LPS mm)")
    p.add_argument("--continue_prediction", action="store_true", help="skip cases already in the output folder")
    p.add_argument("-npp", type=int, default=2, help="processes that read and preprocess")
    p.add_argument("-nps", type=int, default=2, help="threads that write results")
    return p


def main_args(args):
    prepare_allocator_for_prediction(args.low_memory)
    keep = args.save_probabilities or args.mesh is not None
    predictor = Predictor.from_model_folder(model_folder(args), args.folds, args.checkpoint,
                                            inference_settings(args, keep))
    report = predict_folder(predictor, Path(args.input), Path(args.output), args.save_probabilities, args.mesh,
                            args.continue_prediction, args.npp, args.nps)
    for name, message in report.failures:
        print(f"error: {message if name in message else f'{name}: {message}'}", file=sys.stderr)
    print(f"predicted {len(report.stats)} case(s) into {args.output}; {len(report.failures)} failed")
    return common.EXIT_ERROR if report.failures else 0


main = common.entry(build, main_args)
