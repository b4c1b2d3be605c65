"""What every command shares: logging set-up, one-line errors, exit codes."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, List, Optional, Sequence

from nnocc.cli.environment import dataset_paths
from nnocc.paths import DatasetPaths
from nnocc.utils.errors import DatasetProblems, NnoccError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def add_low_memory(p: argparse.ArgumentParser) -> None:
    """For the commands that own a predicting process (nnocc_predict, the challenge container)."""
    p.add_argument("--low_memory", action="store_true",
                   help="give every block of 1 MB or more its own mapping, returned to the system when freed (glibc): "
                        "measured, 0.72x the peak memory for 1.8x the time")


def default_processes() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--verbose", action="store_true", help="log debug messages")
    return p


def add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--dataset", required=True, help="dataset id (23) or name (Dataset023_KiTS2023)")


def add_shape_model(p: argparse.ArgumentParser, inputs: str) -> None:
    """-d, and which structure's shape model (-s, -f) runs over a folder of masks (-i, -o)."""
    add_dataset(p)
    p.add_argument("-s", "--structure", required=True, help="the structure whose shape model to use")
    p.add_argument("-f", "--fold", type=int, default=0, help="the shape model's fold")
    p.add_argument("-i", "--input_folder", required=True, help=inputs)
    p.add_argument("-o", "--output_folder", required=True)


def add_datasets(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--datasets", nargs="+", required=True,
                   help="dataset ids (23 24) or names (Dataset023_KiTS2023), done one after the other")


def for_each_dataset(datasets: Sequence[str], work: Callable[[DatasetPaths], None]) -> None:
    """Run ``work`` per dataset; a dataset that fails is reported and the others still run."""
    failed = []
    for dataset in datasets:
        try:
            work(dataset_paths(dataset))
        except (DatasetProblems, NnoccError) as error:
            if len(datasets) == 1:
                raise
            print_error(error)
            failed.append(str(dataset))
    if failed:
        raise NnoccError(f"{len(failed)} of {len(datasets)} datasets failed ({', '.join(failed)}); the others are done")


def planned_configurations(paths: DatasetPaths, plans_name: str) -> List[str]:
    from nnocc.planning.run import load_plans
    return list(load_plans(paths, plans_name).configurations)


def resolve_configuration(paths: DatasetPaths, plans_name: str, given: Optional[str]) -> str:
    """``-c`` as given; without it, the plans' only configuration.  Where the plans hold several,
    nothing is chosen silently."""
    if given:
        return given
    names = planned_configurations(paths, plans_name)
    if len(names) != 1:
        raise NnoccError(f"{paths.plans_file(plans_name)} holds several configurations ({', '.join(names)}); "
                         f"choose one with -c")
    return names[0]


def describe_plans(plans) -> str:
    """One line per configuration, and the recommendation with its reason."""
    lines = [f"{name}: patch {c.patch_size}, batch {c.batch_size}, {c.architecture.kwargs.get('preset', '')} "
             f"{c.architecture.name}, estimated {c.memory.estimated_peak_gb:.2f} GB"
             for name, c in plans.configurations.items()]
    lines.append(f"recommended: {plans.recommended_configuration} ({plans.recommendation_reason})")
    return "\n".join(lines)


def add_processes(p: argparse.ArgumentParser, flag: str = "-np", default: Optional[int] = None) -> None:
    p.add_argument(flag, dest="num_processes", type=int, default=default or default_processes(),
                   help="worker processes")


def print_error(error: NnoccError) -> None:
    if isinstance(error, DatasetProblems):
        for line in error.problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(error.problems)} problem(s) found; nothing was written", file=sys.stderr)
        return
    for line in str(error).splitlines():
        print(f"error: {line}", file=sys.stderr)


def run(main: Callable[[argparse.Namespace], Optional[int]], p: argparse.ArgumentParser,
        argv: Optional[Sequence[str]] = None) -> int:
    """Parse, run, and turn user errors into one line each and a non-zero exit code."""
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True)
    try:
        return int(main(args) or 0)
    except (DatasetProblems, NnoccError) as e:
        print_error(e)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry(build: Callable[[], argparse.ArgumentParser], main: Callable[[argparse.Namespace], Optional[int]]):
    """A console-script ``main()`` from a parser builder and a main function."""
    def console_main(argv: Optional[Sequence[str]] = None) -> None:
        sys.exit(run(main, build(), argv))
    return console_main
