"""The console's log: one short line per message, like dbt's, or Dagster's full log.

Dagster's own console logger starts every line with the date, time, job, run id and step, some
110 characters before the message, and prints every event with its traceback. By default this
one prints the time, the step and the pipeline's own message; Dagster's events (step starts,
failures with their tracebacks) stay in the event log the UI shows, and `make run` closes with
the cause of a failure. `full: true` (`make run VERBOSE=1`) prints Dagster's lines instead.

Dagster gives a run whose run config names no logger (`dagster asset materialize`, `dg launch`,
a run from the UI) its own colored console logger, which prints a stack trace for each failed
step; it has no setting to give every job another one. `use_short_console()` makes this logger
that default: the same short lines, and one line for each failed step (`make run` closes with
its own summary instead). `VERBOSE=1` in the environment gives Dagster's full lines there too.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from typing import Any

import dagster as dg

from pipeline.teams import TeamsFailedError

STEP_WIDTH = 18
LEVELS = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}
FULL_FORMAT = "%(asctime)s - dagster - %(levelname)s - %(message)s"


class ShortFormatter(logging.Formatter):
    """`10:26:14  invoice_tables      Example Co: loaded 19 month(s) …`"""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        where = meta.get("step_key") or meta.get("resource_name") or ""
        message = step_failure(record) or meta.get("orig_message") or record.getMessage()
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp}  {where:<{STEP_WIDTH}} {LEVELS.get(record.levelno, '')}{message}"


# How long a failed step's cause may be on its one line.
CAUSE_WIDTH = 300


# Errors a step has already said on the console, each failed team on its own line.
SAID_BY_THE_STEP = frozenset({TeamsFailedError.__name__})


def step_failure(record: logging.LogRecord) -> str | None:
    """A failed step's one line: the error it raised and the first line of its message (its
    traceback is in the run's event log); None for any other record, and for a failure whose
    cause the step has already said."""
    meta = getattr(record, "dagster_meta", None) or {}
    event = meta.get("dagster_event")
    if event is None or not event.is_step_failure:
        return None
    error = event.step_failure_data.error
    error = (error.cause or error) if error is not None else None
    if error is not None and error.cls_name in SAID_BY_THE_STEP:
        return None
    said = error.message.strip().splitlines()[0] if error is not None and error.message else ""
    where, colon, message = said.partition(": ")  # `pipeline.teams.TeamsFailedError: …`
    cause = f"{error.cls_name}: {message}" if colon and where.endswith(error.cls_name) else said
    if len(cause) > CAUSE_WIDTH:
        cause = cause[: CAUSE_WIDTH - 1] + "…"
    return f"step failed: {cause or 'no message'} (its traceback: the run's event log, VERBOSE=1)"


class PipelineMessagesOnly(logging.Filter):
    """Dagster's structured events are for the event log; the console gets the messages (and,
    with `step_failures`, a line for each failed step)."""

    def __init__(self, step_failures: bool = False) -> None:
        super().__init__()
        self.step_failures = step_failures

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        if meta.get("dagster_event") is not None:
            return self.step_failures and step_failure(record) is not None
        # Dagster's note for each step skipped after a failure: the closing summary says it.
        return not str(meta.get("orig_message", "")).startswith("Dependencies for step")


@dg.logger(
    {
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "full": dg.Field(bool, is_required=False, default_value=False),
        "step_failures": dg.Field(bool, is_required=False, default_value=False),
    },
    description="Short lines (time, step, message) by default; Dagster's full log with full.",
)
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    log = logging.getLogger("do_billing.console")
    log.setLevel(config["log_level"].upper())
    log.propagate = False
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    if config["full"]:
        handler.setFormatter(logging.Formatter(FULL_FORMAT))
    else:
        handler.setFormatter(ShortFormatter())
        handler.addFilter(PipelineMessagesOnly(config.get("step_failures", False)))
    log.addHandler(handler)
    return log


def verbose() -> bool:
    """`VERBOSE=1` (any value but empty or 0): Dagster's full lines."""
    return os.environ.get("VERBOSE", "0") not in ("", "0")


def _short_default(instance: Any) -> list[tuple[dg.LoggerDefinition, dict[str, Any]]]:
    """What Dagster's `default_system_loggers` gives a run whose config names no logger: this
    module's console logger, at the instance's python_log_level (dagster.yaml), as Dagster's
    own is."""
    level = getattr(instance, "python_log_level", None) or "INFO"
    config = {"log_level": "DEBUG" if verbose() else level, "full": verbose()}
    return [(console_logger, {**config, "step_failures": True})]


def use_short_console() -> None:
    """Every run of these definitions that names no logger in its run config gets the short
    console (`dagster asset materialize`, `dg launch`, the UI's runs): Dagster looks its default
    up by this one name when it creates a run's loggers. With a Dagster that has no such name,
    its own logger stays (the output is longer, nothing else changes)."""
    from dagster._core.execution import context_creation_job

    if hasattr(context_creation_job, "default_system_loggers"):
        context_creation_job.default_system_loggers = _short_default
