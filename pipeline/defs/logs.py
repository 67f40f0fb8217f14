"""The console's log: one short line per message, like dbt's, or Dagster's full log.

Dagster's own console logger starts every line with the date, time, job, run id and step, some
110 characters before the message, and prints every event with its traceback. By default this
one prints the time, the step and the pipeline's own message; Dagster's events (step starts,
failures with their tracebacks) stay in the event log the UI shows, and `make run` closes with
the cause of a failure. `full: true` (`make run VERBOSE=1`) prints Dagster's lines instead.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime

import dagster as dg

STEP_WIDTH = 18
LEVELS = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}
FULL_FORMAT = "%(asctime)s - dagster - %(levelname)s - %(message)s"


class ShortFormatter(logging.Formatter):
    """`10:26:14  invoice_tables      Example Co: loaded 19 month(s) …`"""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        where = meta.get("step_key") or meta.get("resource_name") or ""
        message = meta.get("orig_message") or record.getMessage()
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp}  {where:<{STEP_WIDTH}} {LEVELS.get(record.levelno, '')}{message}"


class PipelineMessagesOnly(logging.Filter):
    """Dagster's structured events are for the event log; the console gets the messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        if meta.get("dagster_event") is not None:
            return False
        # Dagster's note for each step skipped after a failure: the closing summary says it.
        return not str(meta.get("orig_message", "")).startswith("Dependencies for step")


@dg.logger(
    {
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "full": dg.Field(bool, is_required=False, default_value=False),
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
        handler.addFilter(PipelineMessagesOnly())
    log.addHandler(handler)
    return log
