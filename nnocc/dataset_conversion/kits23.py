"""KiTS23's official layout -> ``Dataset023_KiTS2023`` in nnU-Net's raw format, with the challenge's
hierarchical regions (kidney and masses = 1, 2, 3; masses = 2, 3; tumour = 2) and
``regions_class_order`` (1, 3, 2), as nnU-Net's own conversion does."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from tqdm import tqdm

from nnocc.dataset_conversion.synthetic import KITS_REGIONS
from nnocc.utils.atomic import link_or_copy
from nnocc.utils.errors import DatasetProblems, NnoccError
from nnocc.utils.json_io import save_json

IMAGE, SEGMENTATION = "imaging.nii.gz", "segmentation.nii.gz"


def kits_cases(folder: Path) -> Tuple[List[Path], List[Path]]:
    """(labelled case folders, unlabelled case folders); problems for folders without an image."""
    if not folder.is_dir():
        raise NnoccError(f"{folder}: KiTS23 folder not found")
    cases = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("case_"))
    if not cases:
        raise NnoccError(f"{folder}: no case_XXXXX folders (expected the official KiTS23 layout)")
    missing = [f"{c / IMAGE}: missing" for c in cases if not (c / IMAGE).is_file()]
    if missing:
        raise DatasetProblems(missing)
    return [c for c in cases if (c / SEGMENTATION).is_file()], [c for c in cases if not (c / SEGMENTATION).is_file()]


def convert_kits23(kits_folder: Path, raw_folder: Path, dataset_id: int = 23) -> Path:
    labelled, unlabelled = kits_cases(Path(kits_folder))
    target = Path(raw_folder) / f"Dataset{dataset_id:03d}_KiTS2023"
    counts = {"linked": 0, "copied": 0}
    for case in tqdm(labelled, desc="converting KiTS23", unit="case"):
        counts[link_or_copy(case / IMAGE, target / "imagesTr" / f"{case.name}_0000.nii.gz")] += 1
        counts[link_or_copy(case / SEGMENTATION, target / "labelsTr" / f"{case.name}.nii.gz")] += 1
    for case in unlabelled:
        counts[link_or_copy(case / IMAGE, target / "imagesTs" / f"{case.name}_0000.nii.gz")] += 1
    save_json({"name": "KiTS2023", "description": "Kidney and Kidney Tumor Segmentation Challenge 2023",
               "reference": "https://kits-challenge.org/kits23/", "channel_names": {"0": "CT"},
               "labels": KITS_REGIONS, "regions_class_order": [1, 3, 2], "numTraining": len(labelled),
               "file_ending": ".nii.gz", "files_linked": counts["linked"], "files_copied": counts["copied"]},
              target / "dataset.json")
    return target
