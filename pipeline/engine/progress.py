"""What a step says while it loads many teams: a line every tenth of them, one summary at the end.

A thousand teams each saying a dozen lines would print twelve thousand lines, each also an event
Dagster stores. So a step with several teams keeps each team's own lines (its invoice list, its
pages, its rows) at DEBUG on a plain Python logger, outside Dagster's event log; they stay in the
step's metadata (`by_team`). The step log gets progress every tenth of its teams and one summary
naming every failed team. A step with one team keeps that team's lines: they are the step's.
Warnings (a rate-limit pause, a normalizer's remark) are always passed on, with the team's name.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from pipeline.api.log import Log

# Each team's own lines in a step of several teams: `logging.getLogger("pipeline.team")` at DEBUG.
TEAM_LOGGER = "pipeline.team"
# A summary names at most this many failed teams with their cause, one line each; the step's
# error (TeamsFailedError) names every one of them.
SHOWN_FAILURES = 10


class TeamLog:
    """One team's log in a step of several: its info lines at DEBUG, its warnings to the step."""

    def __init__(self, step: Log, team: str) -> None:
        self._step = step
        self._team = team
        self._debug = logging.getLogger(TEAM_LOGGER)

    def info(self, msg: str) -> Any:
        self._debug.debug("%s: %s", self._team, msg)

    def debug(self, msg: str) -> Any:
        self._debug.debug("%s: %s", self._team, msg)

    def warning(self, msg: str) -> Any:
        self._step.warning(f"{self._team}: {msg}")

    def error(self, msg: str) -> Any:
        self._step.warning(f"{self._team}: {msg}")


def team_log(step: Log, team: str, teams: int) -> Log:
    """The log a team's work writes to: the step's own when it is the only team."""
    return step if teams <= 1 else TeamLog(step, team)


class TeamsProgress:
    """`invoices: 300/1000 teams done (1 failed) in 41s`, at every tenth of the teams but the
    last (the step's summary says that one).

    Thread-safe: teams finish on the pool's threads."""

    def __init__(self, log: Log, total: int, what: str) -> None:
        self._log = log
        self.total = total
        self._what = what
        self._lock = threading.Lock()
        self._done = 0
        self._failed = 0
        self._next = 1
        self._started = time.monotonic()

    def done(self, ok: bool) -> None:
        with self._lock:
            self._done += 1
            self._failed += not ok
            done, failed = self._done, self._failed
            due = False
            # The last tenth is the step's summary, which follows at once: not said twice.
            while done < self.total and done >= math.ceil(self._next * self.total / 10):
                self._next += 1
                due = True
        if due:
            failures = f" ({failed} failed)" if failed else ""
            self._log.info(
                f"{self._what}: {done}/{self.total} teams done{failures} "
                f"in {time.monotonic() - self._started:.0f}s"
            )


def failures_summary(failures: Sequence[tuple[str, BaseException]], log: Log) -> None:
    """Each failed team with its cause (the first SHOWN_FAILURES), as errors of the step; a
    refusal an earlier step of the run already reported is not said again (`quiet` errors)."""
    say = getattr(log, "error", log.warning)
    failures = [(who, error) for who, error in failures if not getattr(error, "quiet", False)]
    for who, error in failures[:SHOWN_FAILURES]:
        say(f"{who} failed: {error}")
    if len(failures) > SHOWN_FAILURES:
        rest = ", ".join(who for who, _ in failures[SHOWN_FAILURES:])
        say(f"{len(failures) - SHOWN_FAILURES} more team(s) failed: {rest}")
