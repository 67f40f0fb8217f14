"""The line every check group returns, shared by all of them and the runner."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

MARKS = {True: "✓", False: "✗", None: "–"}
# Long enough for a slow network or database, short enough that a person waits for the answer.
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Check:
    """One line of the report. `ok` is None for a check that was not run because an earlier
    one failed: that failure is the problem to fix, so it is not counted twice."""

    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        return f"{MARKS[self.ok]} {self.name}: {self.detail}"


@contextlib.contextmanager
def silenced(logger: str) -> Iterator[None]:
    """Mute a library logger for a block: the check's own line says it all."""
    log = logging.getLogger(logger)
    before = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = before
