"""What every command shares: logging set-up, one-line errors, exit codes."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Optional, Sequence

from nnocc.utils.errors import DatasetProblems, NnoccError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def default_processes() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--verbose", action="store_true", help="log debug messages")
    return p


def add_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--dataset", required=True, help="dataset id (23) or name (Dataset023_KiTS2023)")


def add_processes(p: argparse.ArgumentParser, flag: str = "-np", default: Optional[int] = None) -> None:
    p.add_argument(flag, dest="num_processes", type=int, default=default or default_processes(),
                   help="worker processes")


def run(main: Callable[[argparse.Namespace], Optional[int]], p: argparse.ArgumentParser,
        argv: Optional[Sequence[str]] = None) -> int:
    """Parse, run, and turn user errors into one line each and a non-zero exit code."""
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True)
    try:
        return int(main(args) or 0)
    except DatasetProblems as e:
        for line in e.problems:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found; nothing was written", file=sys.stderr)
        return EXIT_ERROR
    except NnoccError as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry(build: Callable[[], argparse.ArgumentParser], main: Callable[[argparse.Namespace], Optional[int]]):
    """A console-script ``main()`` from a parser builder and a main function."""
    def console_main(argv: Optional[Sequence[str]] = None) -> None:
        sys.exit(run(main, build(), argv))
    return console_main
