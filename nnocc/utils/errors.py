"""Errors meant for the user: one line, naming the file and the problem, no traceback."""
from __future__ import annotations

from typing import Iterable, List


class NnoccError(Exception):
    """A problem with the user's input or set-up. The CLI prints ``str(error)`` and exits non-zero."""


class DatasetProblems(NnoccError):
    """All the problems found in one pass over a dataset; each is one line naming its file."""

    def __init__(self, problems: Iterable[str]):
        self.problems: List[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self):
        # keep the list intact when the error crosses a process boundary
        return DatasetProblems, (self.problems,)
