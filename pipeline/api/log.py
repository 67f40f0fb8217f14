"""What every layer logs through: Dagster's `context.log`, a `logging.Logger`, or a test's list.

A protocol rather than a type, so the client, the engine and alert delivery accept any of them
without importing Dagster.
"""

from __future__ import annotations

from typing import Any, Protocol


class Log(Protocol):
    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...
