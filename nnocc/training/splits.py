"""Five-fold cross-validation splits (``splits_final.json``), created once and then respected."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import load_json, save_json

NUM_FOLDS = 5
SPLIT_SEED = 12345


def make_splits(case_names: Sequence[str], num_folds: int = NUM_FOLDS, seed: int = SPLIT_SEED) -> List[Dict[str, List[str]]]:
    names = sorted(case_names)
    if len(names) < num_folds:
        raise NnoccError(f"{len(names)} training case(s) cannot make {num_folds} folds; use fold 'all'")
    order = np.random.default_rng(seed).permutation(len(names))
    folds = np.array_split(order, num_folds)
    splits = []
    for k in range(num_folds):
        val = sorted(names[i] for i in folds[k])
        splits.append({"train": sorted(set(names) - set(val)), "val": val})
    return splits


def load_or_create_splits(path: Path, case_names: Sequence[str]) -> List[Dict[str, List[str]]]:
    """Existing splits are used as the user left them (after checking that their cases exist)."""
    if path.is_file():
        splits = load_json(path)
        if not isinstance(splits, list) or not all(isinstance(s, dict) and {"train", "val"} <= set(s) for s in splits):
            raise NnoccError(f"{path}: expected a list of {{'train': [...], 'val': [...]}} objects")
        known = set(case_names)
        for k, split in enumerate(splits):
            unknown = sorted((set(split["train"]) | set(split["val"])) - known)
            if unknown:
                raise NnoccError(f"{path}: fold {k} names case(s) that are not preprocessed: {', '.join(unknown[:5])}")
        return splits
    splits = make_splits(case_names)
    save_json(splits, path)
    return splits


def fold_cases(splits: List[Dict[str, List[str]]], fold: Union[int, str], case_names: Sequence[str]
               ) -> Tuple[List[str], List[str]]:
    """(training cases, validation cases); fold 'all' trains on everything and validates on nothing."""
    if str(fold) == "all":
        return sorted(case_names), []
    fold = int(fold)
    if not 0 <= fold < len(splits):
        raise NnoccError(f"fold {fold} does not exist (the splits file has {len(splits)} folds)")
    return list(splits[fold]["train"]), list(splits[fold]["val"])
