"""Faults the sandbox can inject, so tests exercise real HTTP failure paths."""

from __future__ import annotations

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
