"""Client-side pacing: stay under the API's budgets instead of bouncing off them.

DigitalOcean allows 250 requests per minute and 5,000 per hour per token (sliding windows). The
pacer keeps the same windows on our side, shared by all worker threads, and also obeys what the
server says (`ratelimit-remaining: 0` until `ratelimit-reset`, `Retry-After` on a 429).

The server counts a request when it receives it, some time between our send and its answer, so
the pacer counts a request as in flight from `acquire` to `release` and, after that, from the
time its answer arrived. Whatever the network or a busy machine delays, the server never sees
more requests in a window than the pacer did.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

# The API's budgets per token.
REQUESTS_PER_MINUTE = 250
REQUESTS_PER_HOUR = 5000


class Pacer:
    """Thread-safe sliding-window limiter plus a server-imposed pause."""

    def __init__(
        self,
        per_minute: int | None = REQUESTS_PER_MINUTE,
        per_hour: int | None = REQUESTS_PER_HOUR,
        *,
        margin: float = 0.5,
        minute_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # The margin absorbs the gap between our send time and the server's receive time.
        self._windows = [
            (limit, span + margin, deque(), f"{limit:,} requests per {name}")
            for limit, span, name in (
                (per_minute, minute_seconds, "minute"),
                (per_hour, 3600.0, "hour"),
            )
            if limit
        ]
        self._clock = clock
        self._resume_at = 0.0
        self._in_flight = 0
        self._cond = threading.Condition()
        self.waited_seconds = 0.0

    def acquire(self) -> tuple[float, str]:
        """Block until one more request fits every window; return the seconds waited and why.

        The request counts as in flight until `release`.
        """
        start = self._clock()
        reason = ""
        with self._cond:
            while True:
                now = self._clock()
                wait: float | None = self._resume_at - now
                if wait > 0:
                    reason = "the API asked for a pause (Retry-After or ratelimit-reset)"
                for limit, span, stamps, budget in self._windows:
                    while stamps and stamps[0] <= now - span:
                        stamps.popleft()
                    over = len(stamps) + self._in_flight - limit + 1
                    if over <= 0:
                        continue
                    # In-flight requests leave the window only after they are answered.
                    until = stamps[over - 1] + span - now if over <= len(stamps) else None
                    if wait is not None and (until is None or until > wait):
                        wait, reason = until, f"staying within {budget}"
                if wait is not None and wait <= 0:
                    self._in_flight += 1
                    waited = now - start
                    self.waited_seconds += waited
                    return waited, reason
                self._cond.wait(wait)

    def release(self) -> None:
        """The request's answer (or failure) arrived: it counts in the windows from now."""
        with self._cond:
            self._in_flight -= 1
            now = self._clock()
            for _, _, stamps, _ in self._windows:
                stamps.append(now)
            self._cond.notify_all()

    def pause_for(self, seconds: float) -> None:
        """Hold every thread back for `seconds` (a 429's Retry-After, an exhausted budget)."""
        with self._cond:
            self._resume_at = max(self._resume_at, self._clock() + max(seconds, 0.0))
            self._cond.notify_all()

    def observe(self, headers: Mapping[str, str]) -> float | None:
        """Pause until `ratelimit-reset` when the server reports no requests remaining."""
        remaining = headers.get("ratelimit-remaining")
        reset = headers.get("ratelimit-reset")
        if remaining is None or reset is None:
            return None
        try:
            if int(remaining) > 0:
                return None
            delay = min(max(float(reset) - time.time(), 0.0), 3600.0)
        except ValueError:
            return None
        self.pause_for(delay)
        return delay
