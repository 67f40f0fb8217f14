"""Faults the sandbox can inject, so tests exercise real HTTP failure paths: what one fault is
(`Fault`), and which request meets which (`FaultPlan`)."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fault:
    """One injected behaviour for one matching request.

    kind: an HTTP status as text ("500"), or "reset", "stall", "truncate", "notjson",
    "oversize", "json" (serve `body` instead of the real page), "bytes" (serve `body`, bytes, as
    the page's JSON as it is), "retry_after" (429 with `seconds`),
    "exhausted" (the real page, but `ratelimit-remaining: 0` until `seconds` from now).
    """

    kind: str
    seconds: float = 3.0
    body: Any = field(default=None, compare=False)

    @classmethod
    def of(cls, action: int | str | Fault) -> Fault:
        if isinstance(action, Fault):
            return action
        return cls(str(action))


class FaultPlan:
    """The faults queued per path pattern (and token), and a seeded share of random server
    errors on top (`error_rate`, for soak tests)."""

    def __init__(self, error_rate: float = 0.0, seed: int = 0) -> None:
        self._lock = threading.Lock()
        # (path pattern, token or None for every token, behaviours left)
        self._queued: list[tuple[re.Pattern[str], str | None, deque[Fault]]] = []
        # A share of requests answered 500/502/503/reset at random (seeded), for soak tests.
        self.error_rate = error_rate
        self._random = random.Random(seed)

    def add(
        self, path_regex: str, actions: Sequence[int | str | Fault], times: int, token: str | None
    ) -> None:
        """Queue `actions` (`times` over) for the next requests whose path matches."""
        queue = deque(Fault.of(a) for _ in range(times) for a in actions)
        with self._lock:
            self._queued.append((re.compile(path_regex), token, queue))

    def next(self, path: str, token: str | None = None) -> Fault | None:
        """The behaviour for this request, if any: the first queued one that matches, else a
        random server error at `error_rate`."""
        with self._lock:
            for pattern, target, queue in self._queued:
                if queue and (target is None or target == token) and pattern.search(path):
                    return queue.popleft()
            if self.error_rate and self._random.random() < self.error_rate:
                return Fault(self._random.choice(["500", "502", "503", "reset"]))
        return None
