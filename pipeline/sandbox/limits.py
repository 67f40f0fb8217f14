"""The API's rate limits, per token: a sliding one-minute window (429 with `retry-after`) and an
hourly budget the `ratelimit-*` headers count down."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

HOURLY_LIMIT = 5000


@dataclass(frozen=True)
class Admission:
    """One request's verdict: whether it may be answered, when to come back if not, and what
    the `ratelimit-*` headers say."""

    allowed: bool
    retry_after: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {
            "ratelimit-limit": str(HOURLY_LIMIT),
            "ratelimit-remaining": str(self.remaining),
            "ratelimit-reset": str(self.reset),
        }


class RateLimit:
    """Each token's sliding window of request times (the API limits per token); requests
    without a valid token share the window under None. `per_minute` None: no per-minute limit.
    The "minute" can be shortened so tests of pacing run in seconds."""

    def __init__(self, per_minute: int | None = None, minute_seconds: float = 60.0) -> None:
        self.per_minute = per_minute
        self.minute = minute_seconds
        self._lock = threading.Lock()
        self._stamps: dict[str | None, deque[float]] = {}

    def admit(self, token: str | None = None) -> Admission:
        """Count a request of `token` (a refused one is not counted) and say whether it may go."""
        now = time.monotonic()
        with self._lock:
            stamps = self._stamps.setdefault(token, deque())
            while stamps and stamps[0] <= now - 3600:
                stamps.popleft()
            in_minute = [s for s in stamps if s > now - self.minute]
            last_minute = len(in_minute) if self.per_minute else 0
            retry_after = 0
            if self.per_minute and last_minute >= self.per_minute:
                oldest = in_minute[-self.per_minute]
                retry_after = math.ceil(oldest + self.minute - now)
            if not retry_after:
                stamps.append(now)
            remaining = max(HOURLY_LIMIT - len(stamps), 0)
            oldest_age = now - stamps[0] if stamps else 0
            reset = int(time.time() + 3600 - oldest_age)
        return Admission(not retry_after, max(retry_after, 1), remaining, reset)
