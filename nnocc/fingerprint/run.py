"""Stage 1: ``dataset_fingerprint.json`` for a raw dataset."""
from __future__ import annotations

import logging

from nnocc.fingerprint.fingerprint import DatasetFingerprint, extract_fingerprint
from nnocc.io.raw_dataset import RawDataset
from nnocc.paths import DatasetPaths
from nnocc.utils.json_io import save_json

logger = logging.getLogger(__name__)


def run_fingerprint_extraction(paths: DatasetPaths, num_processes: int = 1, clean: bool = False) -> DatasetFingerprint:
    """Check and fingerprint the raw dataset; reuse an existing fingerprint of the same cases."""
    dataset = RawDataset(paths.raw)
    cases = dataset.training_cases()
    if paths.fingerprint_file.is_file() and not clean:
        existing = DatasetFingerprint.load(paths.fingerprint_file)
        if sorted(c.name for c in existing.cases) == sorted(c.name for c in cases):
            logger.info("%s exists for the same cases; reusing it (--clean to recompute)", paths.fingerprint_file)
            return existing
    fingerprint = extract_fingerprint(dataset, num_processes)
    save_json(dataset.description.to_json(), paths.dataset_json)
    fingerprint.save(paths.fingerprint_file)
    return fingerprint
