"""Overlays for whole folders: images (``<case>_0000<ending>``), segmentations and references."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from nnocc.io.images import SUPPORTED_ENDINGS, read_image
from nnocc.utils.errors import NnoccError
from nnocc.utils.parallel import map_cases
from nnocc.visualization.overlay import overlay_png


def _stem(path: Path) -> str:
    for ending in SUPPORTED_ENDINGS:
        if path.name.endswith(ending):
            return path.name[:-len(ending)]
    return path.stem


def _overlay_case(job) -> str:
    image_file, segmentation, reference, output, names = job
    image, geometry = read_image(image_file)
    prediction = read_image(segmentation)[0] if segmentation else None
    truth = read_image(reference)[0] if reference else None
    for labels, path in ((prediction, segmentation), (truth, reference)):
        if labels is not None and labels.shape != image.shape:
            raise NnoccError(f"{path}: shape {labels.shape} differs from the image's {image.shape}")
    return str(overlay_png(image, geometry, prediction, truth, output, title=output.stem, names=names))


def overlay_folder(images: Path, segmentations: Path, output: Path, references: Optional[Path] = None,
                   names: Optional[Dict[int, str]] = None, num_processes: int = 1) -> List[str]:
    jobs = []
    for segmentation in sorted(Path(segmentations).iterdir()):
        if segmentation.name.startswith(".") or not segmentation.name.lower().endswith(SUPPORTED_ENDINGS):
            continue
        case = _stem(segmentation)
        ending = segmentation.name[len(case):]
        image = Path(images) / f"{case}_0000{ending}"
        if not image.is_file():
            continue
        reference = Path(references) / segmentation.name if references else None
        jobs.append((image, segmentation, reference if reference and reference.is_file() else None,
                     Path(output) / f"{case}.png", names))
    if not jobs:
        raise NnoccError(f"{segmentations}: no segmentation with a matching <case>_0000 image in {images}")
    done, failures = map_cases(_overlay_case, jobs, num_processes, desc="overlays", names=[j[3].stem for j in jobs])
    if failures:
        raise NnoccError("\n".join(f"{n}: {e}" for n, e in failures))
    return done
