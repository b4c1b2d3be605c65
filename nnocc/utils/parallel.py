"""Run one function over many cases in worker processes, with a progress bar.

A failing case does not stop the others: its error is collected and returned with the case's
name, so that batch commands can report every failure at the end.
"""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, List, Optional, Sequence, Tuple

from tqdm import tqdm

from nnocc.utils.errors import NnoccError

logger = logging.getLogger(__name__)


def _describe(error: BaseException) -> BaseException:
    if isinstance(error, NnoccError):
        return error
    return NnoccError(f"{type(error).__name__}: {error}")


def map_cases(fn: Callable[[Any], Any], items: Sequence[Any], num_processes: int, desc: str = "",
              names: Optional[Sequence[str]] = None, disable_progress: bool = False
              ) -> Tuple[List[Any], List[Tuple[str, BaseException]]]:
    """Results aligned with ``items`` (None where an item failed), and (name, error) of the failures."""
    names = list(names) if names is not None else [str(i) for i in range(len(items))]
    results: List[Any] = [None] * len(items)
    failures: List[Tuple[str, BaseException]] = []
    bar = tqdm(total=len(items), desc=desc, disable=disable_progress or not items, unit="case")
    if num_processes <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            try:
                results[i] = fn(item)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:
                logger.debug("case %s failed", names[i], exc_info=True)
                failures.append((names[i], _describe(e)))
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(num_processes, len(items)), mp_context=context) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except BaseException as e:  # noqa: BLE001
                    failures.append((names[i], _describe(e)))
                bar.update()
    bar.close()
    failures.sort(key=lambda f: names.index(f[0]))
    return results, failures


def map_all_cases(fn: Callable[[Any], Any], items: Sequence[Any], num_processes: int, desc: str,
                  names: Sequence[str], action: str) -> List[Any]:
    """``map_cases`` for work that must succeed for every case: one error naming each case that failed."""
    results, failures = map_cases(fn, items, num_processes, desc=desc, names=names)
    if failures:
        raise NnoccError(f"could not {action} {len(failures)} case(s): "
                         + "; ".join(f"{name}: {error}" for name, error in failures))
    return results
