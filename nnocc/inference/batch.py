"""Predicting a folder of cases: read and preprocess ahead in worker processes (``-npp``), predict
in the main process, export in threads (``-nps``).  A case that fails is reported in one line and
skipped; the others are predicted."""
from __future__ import annotations

import logging
import multiprocessing
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from nnocc.inference.export import write_prediction
from nnocc.inference.predictor import Predictor
from nnocc.io.raw_dataset import RawCase, group_channel_files, load_case
from nnocc.preprocessing.preprocessor import PreprocessedImage, preprocess_image
from nnocc.utils.atomic import atomic_write_text
from nnocc.utils.errors import DatasetProblems, NnoccError
from nnocc.utils.json_io import save_json
from nnocc.utils.memory import release_freed_memory

logger = logging.getLogger(__name__)


@dataclass
class BatchReport:
    stats: Dict[str, dict] = field(default_factory=dict)
    failures: List[Tuple[str, str]] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def read_and_preprocess(job) -> PreprocessedImage:
    case, description, config = job
    loaded = load_case(case, description)
    return preprocess_image(loaded.image, loaded.geometry, config, case.name, overwrite_image=True)


def input_cases(folder: Path, predictor: Predictor) -> Tuple[List[RawCase], List[Tuple[str, str]]]:
    d = predictor.description
    if not folder.is_dir():
        raise NnoccError(f"{folder}: input folder not found")
    grouped, problems = group_channel_files(folder, d.file_ending, d.num_channels)
    failures = [(p.split(": ")[0], p) for p in problems]
    if not grouped and not failures:
        raise NnoccError(f"{folder}: no images named <case>_0000{d.file_ending}")
    return [RawCase(name, files) for name, files in sorted(grouped.items())], failures


def _message(error: BaseException) -> str:
    if isinstance(error, DatasetProblems):
        return "; ".join(error.problems)
    return str(error) if isinstance(error, NnoccError) else f"{type(error).__name__}: {error}"


def _timed_export(prediction, predictor: Predictor, folder: Path, probabilities: bool, mesh: Optional[str]) -> float:
    started = time.perf_counter()
    write_prediction(prediction, predictor.description, folder, probabilities, mesh, predictor.config.mise.threshold)
    return time.perf_counter() - started


def predict_folder(predictor: Predictor, input_folder: Path, output_folder: Path, save_probabilities: bool = False,
                   mesh: Optional[str] = None, continue_prediction: bool = False, num_preprocessing: int = 2,
                   num_export: int = 2) -> BatchReport:
    output_folder.mkdir(parents=True, exist_ok=True)
    cases, failures = input_cases(Path(input_folder), predictor)
    report = BatchReport(failures=list(failures))
    ending = predictor.description.file_ending
    todo = [c for c in cases if not (continue_prediction and (output_folder / f"{c.name}{ending}").is_file())]
    report.skipped = [c.name for c in cases if c not in todo]
    jobs = [(c, predictor.description, predictor.config) for c in todo]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, num_preprocessing), mp_context=context) as readers, \
            ThreadPoolExecutor(max(1, num_export)) as writers:
        # read ahead only as far as the readers can work at once: a whole folder of preprocessed
        # KiTS23 scans (about 30 MB each) would otherwise pile up in this process
        ahead = max(1, num_preprocessing) + 1
        pending = deque(readers.submit(read_and_preprocess, job) for job in jobs[:ahead])
        exports: List[Tuple[str, Future]] = []
        for index, case in enumerate(tqdm(todo, desc="predicting", unit="case")):
            future = pending.popleft()
            if index + ahead < len(jobs):
                pending.append(readers.submit(read_and_preprocess, jobs[index + ahead]))
            try:
                pre = future.result()
                prediction = predictor.predict_preprocessed(pre)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - one bad case must not stop the batch
                report.failures.append((case.name, _message(e)))
                logger.error("%s: %s", case.name, _message(e))
                continue
            exports.append((case.name, writers.submit(_timed_export, prediction, predictor, output_folder,
                                                      save_probabilities, mesh)))
            report.stats[case.name] = prediction.stats
            del pre, prediction
            wait_for_writers(exports, max(1, num_export))
            release_freed_memory()
        for name, future in exports:
            try:
                report.stats[name]["seconds_export"] = future.result()
            except BaseException as e:  # noqa: BLE001
                report.stats.pop(name, None)
                report.failures.append((name, _message(e)))
    write_batch_files(predictor, output_folder, report)
    return report


def wait_for_writers(exports: List[Tuple[str, Future]], limit: int) -> None:
    """Keep at most ``limit`` predictions waiting to be written: each holds a whole label map."""
    waiting = [future for _, future in exports if not future.done()]
    for future in waiting[:max(0, len(waiting) - limit)]:
        wait([future])


def write_batch_files(predictor: Predictor, folder: Path, report: BatchReport) -> None:
    predictor.plans.save(folder / "plans.json")
    save_json(predictor.description.to_json(), folder / "dataset.json")
    save_json({"folds": predictor.folds, "settings": predictor.settings.__dict__, "cases": report.stats},
              folder / "inference_stats.json")
    lines = [f"predicted {len(report.stats)} case(s); skipped {len(report.skipped)} already done; "
             f"{len(report.failures)} failed"]
    lines += [f"FAILED {name}: {message}" for name, message in report.failures]
    lines += [f"ok {name}: {s['queries']} queries ({100 * s['query_fraction']:.1f} % of dense), "
              f"{s['seconds_total']:.1f} s" for name, s in report.stats.items()]
    atomic_write_text(folder / "predict_log.txt", "\n".join(lines) + "\n")
