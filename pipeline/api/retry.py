"""Retry as policy: which failures are worth another attempt, how long to wait, when to stop.

tenacity runs the attempts; this module only says what the policy is. Rate limiting (429) is not
a failure here: the pacer waits it out on its own budget, shared by every thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tenacity

from pipeline.api.errors import ApiError
from pipeline.api.log import Log


class TransientError(Exception):
    """A failure the next attempt may not have: a 5xx, a dropped connection, a torn body."""

    def __init__(self, where: str, failure: str) -> None:
        super().__init__(f"{where}: {failure}")
        self.where = where
        self.failure = failure


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in each wait."""

    attempts: int = 5
    backoff: float = 0.5
    backoff_max: float = 20.0
    jitter: float = 0.5
    max_rate_limit_waits: int = 30
    max_retry_after: float = 3600.0

    def retrying(
        self,
        log: Log,
        on_retry: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tenacity.Retrying:
        """A tenacity loop that retries TransientError and logs each retry with its cause."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            on_retry()
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                f"{error}; retry {state.attempt_number} of {self.attempts - 1} in {delay:.1f}s"
            )

        def give_up(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            raise ApiError(f"{error}; gave up after {state.attempt_number} attempts") from None

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff, max=self.backoff_max)
            + tenacity.wait_random(0, self.backoff * self.jitter),
            retry=tenacity.retry_if_exception_type(TransientError),
            before_sleep=before_sleep,
            retry_error_callback=give_up,
            sleep=sleep,
        )

    def retry_after(
        self, headers: Mapping[str, str], now: Callable[[], float] = time.time
    ) -> float:
        """Seconds a 429 asks us to wait: `retry-after`, else until `ratelimit-reset`, bounded."""
        for name, relative in (("retry-after", True), ("ratelimit-reset", False)):
            value = headers.get(name)
            try:
                delay = float(value) if value is not None else None
            except ValueError:
                delay = None
            if delay is not None:
                delay = delay if relative else delay - now()
                return min(max(delay, 0.0), self.max_retry_after)
        return 1.0
