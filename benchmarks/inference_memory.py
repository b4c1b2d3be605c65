"""Where nnocc's inference memory goes, on one case (a KiTS-sized one, say).

    python -m benchmarks.inference_memory -m MODEL_FOLDER -i CASE_0000.nii.gz [--out FILE] [--nnunet-peak-mb MB]

Two views of the same prediction:
* stages, in one process: the resident set after loading the model, reading the case,
  preprocessing, encoding and MISE, turning codes into labels, and writing the file, each with
  its own peak (the kernel's high-water mark, reset before each stage where Linux allows it);
* settings, one ``nnocc_predict`` process each: as shipped, without mirroring, with Gaussian
  stitching (the one mode that keeps a tile cache) at two cache sizes; peak resident set of the
  whole command, and seconds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from benchmarks.cost_cli import rss_mb
from benchmarks.measure import measure
from nnocc.utils.json_io import save_json

HERE = Path(__file__).resolve().parent
VARIANTS: List[Tuple[str, List[str]]] = [
    ("as shipped (mirroring)", []),
    ("no mirroring", ["--disable_tta"]),
    ("no mirroring, Gaussian stitching (2048 MB tile cache)", ["--disable_tta", "--stitching", "gaussian"]),
    ("no mirroring, Gaussian stitching, 256 MB tile cache", ["--disable_tta", "--stitching", "gaussian",
                                                             "--tile_cache_mb", "256"]),
]


def _peak_mb() -> float:
    """The resident set's high-water mark (VmHWM; cost_cli.rss_mb gives the current VmRSS)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))


def _reset_peak() -> bool:
    try:   # Linux >= 4.0: "5" resets VmHWM to the current resident set
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def stage_profile(model_folder: Path, image_file: Path, tta: bool) -> Dict:
    """Resident set after each stage of one prediction, and each stage's own peak when resettable."""
    from nnocc.inference.predictor import InferenceSettings, Predictor
    from nnocc.io.images import read_channels, write_segmentation

    stages: List[Dict] = []
    resettable = _reset_peak()

    def stage(name: str, fn: Callable):
        if resettable:
            _reset_peak()
        began = time.perf_counter()
        out = fn()
        stages.append({"stage": name, "seconds": time.perf_counter() - began, "rss_after_mb": rss_mb(),
                       "peak_mb": _peak_mb()})
        return out

    predictor = stage("load model", lambda: Predictor.from_model_folder(
        model_folder, ["0"], settings=InferenceSettings(tta=tta)))
    scan = [stage("read the case", lambda: read_channels([image_file]))]
    # as nnocc_predict does: the scan is normalised where it lies, and not kept while predicting
    pre = stage("preprocess", lambda: predictor.preprocess(*scan.pop(), image_file.name, overwrite_image=True))
    prediction = stage("encode and MISE", lambda: predictor.predict_preprocessed(pre))
    with tempfile.TemporaryDirectory() as tmp:
        stage("write the label map", lambda: write_segmentation(prediction.labels, prediction.geometry,
                                                                Path(tmp) / "case.nii.gz"))
    return {"tta": tta, "peak_resettable": resettable, "stages": stages,
            "output_shape": prediction.stats["output_shape"], "queries": prediction.stats["queries"],
            "encoded_tiles": prediction.stats["encoded_tiles"], "members": prediction.stats["members"]}


def variants(model_folder: Path, image_file: Path, work: Path) -> Dict:
    single = work / "input"
    single.mkdir(parents=True, exist_ok=True)
    link = single / image_file.name
    if not link.exists():
        link.symlink_to(image_file.resolve())
    out: Dict = {}
    for name, extra in VARIANTS:
        m = measure([sys.executable, "-m", "nnocc", "predict", "-i", str(single), "-o", str(work / "out"), "-m",
                     str(model_folder), "-f", "0", "-npp", "1", "-nps", "1", *extra], work / "predict.log")
        out[name] = {"seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb, "flags": extra}
    return out


def _earlier(path: Optional[Path], label: str) -> Optional[Dict]:
    if path is None:
        return None
    earlier = json.loads(path.read_text())
    return {"label": label, "stages": earlier["stages_no_mirroring"]["stages"], "command": earlier["command"]}


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model-folder", type=Path, required=True)
    p.add_argument("-i", "--image", type=Path, required=True, help="one case's <case>_0000.nii.gz")
    p.add_argument("--nnunet-peak-mb", type=float, default=None, help="nnU-Net's peak on the same case, to compare")
    p.add_argument("--out", type=Path, default=HERE / "results" / "inference_memory_cpu.json")
    p.add_argument("--stages-only", action="store_true", help="only the stage profile, not the per-setting runs")
    p.add_argument("--before", type=Path, default=None,
                   help="an earlier result of this script (same case, older code) to show beside this one")
    p.add_argument("--before-label", default="before", help="what --before was measured with, e.g. a commit")
    p.add_argument("--stage", action="store_true", help=argparse.SUPPRESS)   # the in-process profile, as a child
    args = p.parse_args(argv)
    if args.stage:
        print(json.dumps(stage_profile(args.model_folder, args.image, tta=False)))
        return args.out
    child = subprocess.run([sys.executable, "-m", "benchmarks.inference_memory", "-m", str(args.model_folder), "-i",
                            str(args.image), "--stage"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        profile = json.loads(next(line for line in child.stdout.splitlines() if line.startswith("{")))
        results = {"case": args.image.name.split("_0000")[0], "stages_no_mirroring": profile,
                   "variants": {} if args.stages_only else variants(args.model_folder, args.image, Path(tmp)),
                   "nnunet_peak_rss_mb": args.nnunet_peak_mb, "before": _earlier(args.before, args.before_label),
                   "command": f"python -m benchmarks.inference_memory {' '.join(sys.argv[1:] or argv or [])}"}
    save_json(results, args.out)
    return args.out


def memory_section(data: Optional[Dict]) -> List[str]:
    if not data:
        return []
    profile = data["stages_no_mirroring"]
    peaks = "each stage its own peak" if profile["peak_resettable"] else "peaks cumulative: this kernel keeps them"
    before = data.get("before")
    lines = ["", f"### Where the memory goes ({data['case']}, output {profile['output_shape']})", "",
             f"`{data['command']}`. One process, stage by stage, no mirroring ({peaks}); the scan is normalised in "
             "place and let go before prediction, as `nnocc_predict` does"
             + (f"; beside it the same profile with the code of {before['label']} (`{before['command']}`)" if before
                else "") + ":", "",
             "| stage | seconds | resident after (MB) | peak during (MB) |" + (f" peak with {before['label']} (MB) |"
                                                                             if before else ""),
             "|---|---|---|---|" + ("---|" if before else "")]
    earlier = {s["stage"]: s for s in before["stages"]} if before else {}
    lines += [f"| {s['stage']} | {s['seconds']:.1f} | {s['rss_after_mb']:.0f} | {s['peak_mb']:.0f} |"
              + (f" {earlier[s['stage']]['peak_mb']:.0f} |" if s["stage"] in earlier else (" – |" if before else ""))
              for s in profile["stages"]]
    if not data["variants"]:
        return lines + [""]
    lines += ["", "One `nnocc_predict` process per setting (whole command):", "",
              "| setting | seconds | peak RSS (MB) | / nnU-Net's |", "|---|---|---|---|"]
    theirs = data.get("nnunet_peak_rss_mb")
    for name, v in data["variants"].items():
        ratio = f"{v['peak_rss_mb'] / theirs:.2f}" if theirs else "–"
        lines.append(f"| {name} | {v['seconds']:.1f} | {v['peak_rss_mb']:.0f} | {ratio} |")
    return lines + [""]


if __name__ == "__main__":
    print(main())
