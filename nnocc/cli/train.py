"""nnocc_train: train one fold (0-4 or 'all') of a configuration, e.g. ``nnocc_train 23 3d_occ 0``."""
from pathlib import Path
from typing import Optional

from nnocc.cli import common
from nnocc.cli.environment import augmentation_workers, dataset_paths, torchrun_spec
from nnocc.paths import DatasetPaths
from nnocc.training.distributed import DistributedSpec, join_process_group, launch
from nnocc.training.loop import FoldTrainer
from nnocc.training.run import TrainingSettings, prepare_run
from nnocc.utils.errors import NnoccError


def _key_value(text: str):
    if "=" not in text:
        raise NnoccError(f"--set expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def build():
    p = common.parser(__doc__)
    p.add_argument("dataset", help="dataset id or name")
    p.add_argument("configuration", help="e.g. 3d_occ")
    p.add_argument("fold", help="0-4, or 'all' to train on every case")
    p.add_argument("-p", "--plans_name", default="nnoccPlans")
    p.add_argument("-tr", "--trainer", default="nnoccTrainer", help="name of this training variant (output folder)")
    p.add_argument("--epochs", type=int, default=None, help="override the plan's number of epochs")
    p.add_argument("--iterations_per_epoch", type=int, default=None)
    p.add_argument("--validation_iterations", type=int, default=None)
    p.add_argument("--budget_minutes", type=float, default=None,
                   help="stop after this much training time; the learning rate anneals to reach zero there")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any training setting of the plan, e.g. --set initial_lr=3e-4")
    p.add_argument("--c", dest="continue_training", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--val", dest="only_validation", action="store_true", help="only run the final validation")
    p.add_argument("--no_final_validation", action="store_true")
    p.add_argument("--val_disable_tta", action="store_true", help="final validation without mirroring (faster)")
    p.add_argument("--npz", action="store_true",
                   help="save the validation probabilities (needed to ensemble configurations)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    p.add_argument("--no_amp", action="store_true", help="train in float32 on CUDA (default: mixed precision)")
    p.add_argument("--snapshot_minutes", type=float, nargs="+", default=[], metavar="M",
                   help="also keep checkpoint_at_<M>min.pth when the training clock passes each M (learning curves)")
    p.add_argument("--num_gpus", "--num_processes", dest="num_processes", type=int, default=1,
                   help="DistributedDataParallel over this many processes (GPUs; on the CPU with gloo)")
    p.add_argument("--pretrained_weights", type=Path, default=None, help="local encoder checkpoint to start from")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--quiet", action="store_true", help="no per-iteration progress bar")
    return p


def settings_from(args) -> TrainingSettings:
    return TrainingSettings(
        fold=args.fold, device=args.device, num_epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
        validation_iterations=args.validation_iterations, time_budget_minutes=args.budget_minutes,
        continue_training=args.continue_training, only_validation=args.only_validation,
        final_validation=not args.no_final_validation, validation_tta=not args.val_disable_tta,
        save_probabilities=args.npz,
        pretrained_weights=args.pretrained_weights, trainer_name=args.trainer, plans_name=args.plans_name,
        overrides=dict(_key_value(kv) for kv in args.set), seed=args.seed, show_progress=not args.quiet,
        num_workers=augmentation_workers(), amp=not args.no_amp, snapshot_minutes=sorted(args.snapshot_minutes))


def train(paths: DatasetPaths, configuration: str, settings: TrainingSettings,
          spec: Optional[DistributedSpec] = None) -> Path:
    run = prepare_run(paths, configuration, settings)
    return FoldTrainer(run, join_process_group(spec, settings.device)).train()


def main_args(args):
    if args.fold != "all" and not args.fold.isdigit():
        raise NnoccError(f"fold must be a number or 'all', got {args.fold!r}")
    settings = settings_from(args)
    paths = dataset_paths(args.dataset)
    if args.num_processes > 1:
        launch(args.num_processes, train, paths, args.configuration, settings)
    else:
        print(train(paths, args.configuration, settings, torchrun_spec()))


main = common.entry(build, main_args)
