"""Seed 004's kidney table on real KiTS23 kidneys: random, farthest-point and learned cubes, N x K in
{4, 8, 12} x {9, 11, 13}, each shape rebuilt by the shape model from its cubes' voxels alone.

    python -m benchmarks.shape_reconstruction --kits23 PATH [--fold 0] [--shape-minutes 30]
        [--sampler-minutes 4] [--train-latent-steps 10] [--check-points 4096] [--latent-steps 100]
        [--random-repeats 3] [--test-shapes 20] [--configs 4x9 8x11 ...] [--work DIR] [--out FILE]

PATH is a checkout of github.com/neheller/kits23 (``dataset/case_XXXXX/segmentation.nii.gz``; CC BY-NC-SA,
read in place, nothing of it is written outside the working folder).  Only case_00000-case_00299 are
read: the later ones are kept for independent evaluation.  The task is the thesis's: kidney with masses
(labels 1-3), one kidney at a time, 1.5 mm isotropic crops sized by the largest training kidney plus
10 %.  Scores (Dice, ASD, HD95) are on the crop's grid, as the thesis's; random and farthest-point
sampling are averaged over ``--random-repeats`` draws (the thesis: 30).  The thesis's figures for
TotalSegmentator kidneys stand beside ours.  The options say how far the run is reduced from the
thesis's protocol (five folds, 400 sampler epochs through 100 unrolled steps, every crop voxel).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("benchmarks")
LAST_DEVELOPMENT_CASE = 299
KIDNEY_VALUES = (1, 2, 3)
# the thesis's kidney rows (Table 5.x, 004_tables.csv): (Dice, ASD, HD95) for proposed / FPS / random
THESIS_KIDNEYS_T100 = {
    "4x9": ((0.842, 0.840, 0.812), (1.311, 1.346, 1.560), (4.364, 4.380, 5.148)),
    "4x11": ((0.849, 0.849, 0.825), (1.256, 1.267, 1.453), (4.346, 4.311, 4.904)),
    "4x13": ((0.863, 0.862, 0.840), (1.124, 1.144, 1.319), (3.897, 3.914, 4.522)),
    "8x9": ((0.866, 0.869, 0.850), (1.102, 1.054, 1.219), (3.901, 3.866, 4.197)),
    "8x11": ((0.891, 0.890, 0.870), (0.860, 0.869, 1.042), (3.130, 3.235, 3.665)),
    "8x13": ((0.901, 0.902, 0.884), (0.786, 0.778, 0.927), (2.951, 3.089, 3.407)),
    "12x9": ((0.892, 0.900, 0.881), (0.875, 0.819, 0.964), (3.303, 3.396, 3.528)),
    "12x11": ((0.910, 0.913, 0.896), (0.688, 0.663, 0.813), (2.518, 2.620, 3.002)),
    "12x13": ((0.924, 0.926, 0.910), (0.553, 0.545, 0.685), (2.049, 2.255, 2.604)),
}
SAMPLER_NAMES = ("learned", "farthest_point", "random")


def _keep_largest():
    from nnocc.postprocessing.components import PostprocessingStep
    return PostprocessingStep(target="foreground", label_values=[1], operation="keep_largest")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kits23", type=Path, required=True, help="a checkout of neheller/kits23")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--spacing-mm", type=float, default=1.5)
    p.add_argument("--shape-minutes", type=float, default=30.0)
    p.add_argument("--shape-batch", type=int, default=8, help="shapes per step of the shape model (public code: 8)")
    p.add_argument("--shape-points", type=int, default=4096, help="points per shape and step")
    p.add_argument("--shape-latent-lr", type=float, default=1e-3, help="the training codes' rate (public code: 1e-3)")
    p.add_argument("--sampler-minutes", type=float, default=4.0, help="per N x K")
    p.add_argument("--train-latent-steps", type=int, default=10, help="T while training the sampler (thesis: 100)")
    p.add_argument("--check-points", type=int, default=4096, help="voxels scoring a reconstruction in training")
    p.add_argument("--sampler-fit-points", type=int, default=2048, help="cube voxels per unrolled step in training")
    p.add_argument("--fit-points", type=int, default=None,
                   help="cube voxels per Adam step when rebuilding (default: all, as the thesis)")
    p.add_argument("--latent-steps", type=int, nargs="+", default=[100], help="T when rebuilding (33 66 100)")
    p.add_argument("--random-repeats", type=int, default=3)
    p.add_argument("--test-shapes", type=int, default=None, help="at most this many test shapes")
    p.add_argument("--configs", nargs="+", default=list(THESIS_KIDNEYS_T100), help="N x K, e.g. 8x11")
    p.add_argument("--reuse-shape-model", action="store_true",
                   help="the shape model an earlier run left in --work; rows are added to --out's table")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=HERE / "work" / "shape_reconstruction")
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def kits_label_files(root: Path) -> Dict[str, Path]:
    files = {p.parent.name: p for p in sorted((root / "dataset").glob("case_*/segmentation.nii.gz"))
             if int(p.parent.name.split("_")[1]) <= LAST_DEVELOPMENT_CASE}
    if not files:
        raise SystemExit(f"{root}: no dataset/case_XXXXX/segmentation.nii.gz up to case_{LAST_DEVELOPMENT_CASE:05d}")
    return files


def load_crops(args: argparse.Namespace):
    """Every development case's kidneys as crops, cached in the working folder (derived data, not committed)."""
    from nnocc.shape.crops import CropGrid
    from nnocc.shape.dataset import collect_shapes, crops_of, fitting_shapes, shape_splits, typical_shapes

    files = kits_label_files(args.kits23)
    split = shape_splits(list(files), args.fold)
    cache = args.work / f"crops_fold{args.fold}_{args.spacing_mm:g}mm.npz"
    if cache.is_file():
        data = np.load(cache)
        grid = CropGrid([int(v) for v in data["grid"]], args.spacing_mm)
        return {k: data[k] for k in ("train", "test")}, grid, split
    train, grid = crops_of(typical_shapes(collect_shapes({c: files[c] for c in split["train"]}, KIDNEY_VALUES)),
                           args.spacing_mm)
    test_shapes = fitting_shapes(collect_shapes({c: files[c] for c in split["test"]}, KIDNEY_VALUES), grid)
    test, _ = crops_of(test_shapes, args.spacing_mm, grid)
    args.work.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, train=train, test=test, grid=np.asarray(grid.shape))
    return {"train": train, "test": test}, grid, split


def score(decoder, crops: np.ndarray, grid, sampler, count: int, edge: int, fit, repeats: int,
          seed: int) -> Dict[str, float]:
    """Mean Dice, ASD and HD95 over the shapes (and the repeats of a random sampler), of the reconstruction
    as the shape model gives it (the thesis's) and of its largest component alone (``*_largest``): each crop
    holds one kidney, so anything apart from the largest piece is a floater of an under-trained model."""
    from nnocc.evaluation.metrics import MetricSettings, structure_metrics
    from nnocc.postprocessing.components import apply_step
    from nnocc.shape.reconstruct import evaluate_crop, fit_to_cubes

    rng = np.random.default_rng(seed)
    spacing, keep_largest = [grid.spacing_mm] * 3, _keep_largest()
    rows: List[Dict[str, float]] = []
    for crop in crops:
        for _ in range(repeats):
            centres = sampler(crop, count, rng)
            code, _ = fit_to_cubes(decoder, crop, grid, centres, edge, fit, rng)
            rebuilt = evaluate_crop(decoder, code, grid)
            largest = apply_step(rebuilt.astype(np.uint8), keep_largest, spacing) > 0
            m = structure_metrics(crop, rebuilt, spacing, MetricSettings())
            row = {"dice": m["dice"], "asd": m["assd"], "hd95": m["hd95"]}
            if not np.array_equal(largest, rebuilt):       # most reconstructions are one piece: nothing to rescore
                m = structure_metrics(crop, largest, spacing, MetricSettings())
            rows.append(row | {"dice_largest": m["dice"], "asd_largest": m["assd"], "hd95_largest": m["hd95"]})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n": len(rows)}


def run_config(decoder, crops, grid, args: argparse.Namespace, config: str) -> Dict:
    from nnocc.shape.latent_fit import LatentFit
    from nnocc.shape.sampler_training import LearnedCentres, SamplerTraining, train_sampler
    from nnocc.shape.samplers import SAMPLERS

    count, edge = (int(v) for v in config.split("x"))
    settings = SamplerTraining(count=count, edge=edge, latent_steps=args.train_latent_steps, epochs=10 ** 6,
                               minutes=args.sampler_minutes, check_points=args.check_points,
                               fit_points=args.sampler_fit_points)
    generator, history = train_sampler(decoder, crops["train"], grid, settings, show_progress=False)
    samplers = {"learned": (LearnedCentres(generator), 1), "farthest_point": (SAMPLERS["farthest_point"], args.random_repeats),
                "random": (SAMPLERS["random"], args.random_repeats)}
    out: Dict = {"sampler_training": settings.to_dict() | {"epochs_run": history.epochs, "seconds": history.seconds}}
    for steps in args.latent_steps:
        fit = LatentFit(steps=steps, points_per_step=args.fit_points)
        out[f"T{steps}"] = {name: score(decoder, crops["test"], grid, sampler, count, edge, fit, repeats, seed=1)
                            for name, (sampler, repeats) in samplers.items()}
        logger.info("%s T%d: %s", config, steps, {k: round(v["dice"], 3) for k, v in out[f"T{steps}"].items()})
    thesis = THESIS_KIDNEYS_T100.get(config)
    if thesis:
        out["thesis_T100"] = {name: {"dice": thesis[0][i], "asd": thesis[1][i], "hd95": thesis[2][i]}
                              for i, name in enumerate(SAMPLER_NAMES)}
    return out


def shape_model(crops: Dict, grid, args: argparse.Namespace):
    """The shape model trained on the training kidneys, or the one an earlier run of this fold left in the
    working folder (``--reuse-shape-model``: the table's rows can then run in several sittings)."""
    from nnocc.shape.network import ShapeDecoder
    from nnocc.shape.training import ShapeTraining, train_shape_decoder
    from nnocc.utils.checkpoints import load_checkpoint, save_checkpoint

    stored = args.work / f"shape_model_fold{args.fold}.pth"
    if args.reuse_shape_model and stored.is_file():
        payload = load_checkpoint(stored)
        decoder = ShapeDecoder()
        decoder.load_state_dict(payload["decoder"])
        return decoder.eval(), json.loads(stored.with_suffix(".json").read_text())
    settings = ShapeTraining(steps=10 ** 7, minutes=args.shape_minutes, batch_size=args.shape_batch,
                             points_per_shape=args.shape_points, latent_learning_rate=args.shape_latent_lr)
    decoder, _, history = train_shape_decoder(crops["train"], grid, settings, show_progress=False)
    save_checkpoint(stored, {"decoder": decoder.state_dict()})
    summary = settings.to_dict() | {"steps_run": history.steps, "seconds": history.seconds,
                                    "final_loss": history.loss[-1:]}
    stored.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return decoder, summary


def _plain(value):
    """numpy scalars as JSON numbers."""
    return value.item() if hasattr(value, "item") else str(value)


def main(argv=None) -> Path:
    import torch

    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    crops, grid, split = load_crops(args)
    if args.test_shapes:
        crops["test"] = crops["test"][: args.test_shapes]
    logger.info("%d training and %d test kidneys on a %s grid", len(crops["train"]), len(crops["test"]), grid.shape)
    decoder, model_summary = shape_model(crops, grid, args)
    results: Dict = {"date": datetime.date.today().isoformat(), "command": " ".join(
        ["python -m benchmarks.shape_reconstruction", *(argv if argv is not None else sys.argv[1:])]),
        "fold": args.fold, "grid": grid.to_dict(), "latent_steps": args.latent_steps, "fit_points": args.fit_points,
        "random_repeats": args.random_repeats, "cases": {k: len(v) for k, v in split.items()},
        "shapes": {k: len(v) for k, v in crops.items()}, "shape_model": model_summary, "configs": {}}
    out = args.out or HERE / "results" / f"{results['date']}_shape_reconstruction_cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.reuse_shape_model and out.is_file():      # more rows for the same shape model: added to its table
        earlier = json.loads(out.read_text())
        results["configs"] = earlier["configs"]
        results["commands"] = earlier.get("commands", [earlier["command"]]) + [results["command"]]
    for config in args.configs:
        logger.info("%s: train the sampler, rebuild the test kidneys", config)
        results["configs"][config] = run_config(decoder, crops, grid, args, config)
        out.write_text(json.dumps(results, indent=2, default=_plain) + "\n")      # each row as soon as it is done
    print(out)
    return out


if __name__ == "__main__":
    main()
