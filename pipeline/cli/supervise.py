"""`make run`'s run, supervised: a signal or a lost instance database ends it in seconds.

The run executes in-process on a thread of its own, so the main thread stays free to act:

- **SIGTERM or SIGINT**: Dagster's in-process run only notes the signal and goes on (a worker
  sitting out a rate-limit pause of up to an hour keeps the process alive that long). Here the
  run is recorded as canceled (`DagsterInstance.report_run_canceled`) and the process exits at
  once, as after a SIGKILL: a month being written keeps its previous rows (one transaction).
- **The instance's PostgreSQL stops answering**: dagster-postgres retries each connection six
  times (about 6 s) and warns on the root logger each time, and Dagster goes on with the run,
  writing each failed event's traceback: some 300 lines over 80 s. Here the first call that gives
  up stops the run; the process names the database, tries for `RECORD_SECONDS` to record the run
  as failed (`report_run_failed`), says whether it could, and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import FrameType
from typing import NoReturn, TextIO, TypeVar
from urllib.parse import urlsplit

import dagster as dg
import sqlalchemy as sa

from pipeline.dagster_storage import POSTGRES_URL_ENV, postgres_url

T = TypeVar("T")

# dagster-postgres's warning before each retry of a connection, and how many it makes of one
# call before it raises (`retry_pg_connection_fn`: the first try and five retries).
RETRY_WARNING = "Retrying failed database connection"
TRIES_PER_CALL = 6
# One call's six tries take about 6 s; this many warnings within this window is a call given up.
GIVE_UP_WINDOW_SECONDS = 30.0
# How long a run cut off from its instance waits for the database to record the run as failed.
RECORD_SECONDS = 20.0
POLL_SECONDS = 0.1
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
CONSOLE_LOGGER = "do_billing.console"


class Signalled(BaseException):  # noqa: N818 (not an error: a request to stop)
    """The process was asked to stop (SIGTERM, SIGINT); raised in the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def instance_database(env: dict[str, str] | None = None) -> str | None:
    """How messages name the instance's PostgreSQL: `host:port/db (DAGSTER_POSTGRES_URL)`, never
    its user or password; None when the instance is in SQLite."""
    url = postgres_url(env=env)
    if url is None:
        return None
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}{parts.path or '/'}"
    return f"PostgreSQL at {where} ({POSTGRES_URL_ENV})"


def _masked(text: str) -> str:
    """The driver's message, first line, without the URL's password should it appear."""
    line = text.strip().splitlines()[0] if text.strip() else text
    password = urlsplit(postgres_url() or "").password
    return line.replace(password, "***") if password else line


class InstanceWatch(logging.Handler):
    """A root handler that takes dagster-postgres's retry warnings off the console (they pass
    through with `verbose`) and notices when a call has given up: the instance is unreachable.
    Other records print as Python's default `logging.warning` set-up prints them."""

    def __init__(self, verbose: bool = False, stream: TextIO | None = None) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.down = threading.Event()
        self.reason = ""
        self._seen: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith(RETRY_WARNING):
            error = record.args[0] if isinstance(record.args, tuple) and record.args else None
            self.reason = _masked(str(getattr(error, "orig", None) or error or ""))
            now = time.monotonic()
            self._seen = [t for t in self._seen if now - t < GIVE_UP_WINDOW_SECONDS] + [now]
            if len(self._seen) >= TRIES_PER_CALL:
                self.down.set()
            if not self.verbose:
                return
        self.stream.write(self.format(record) + "\n")
        self.stream.flush()

    def __enter__(self) -> InstanceWatch:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)


def _raise_signalled(signum: int, _: FrameType | None) -> None:
    raise Signalled(signum)


def database_errors() -> tuple[type[BaseException], ...]:
    """What a write to an unreachable instance raises: SQLAlchemy's errors, and
    dagster-postgres's once its retries are spent."""
    try:
        from dagster_postgres.utils import DagsterPostgresException
    except ImportError:
        return (sa.exc.SQLAlchemyError,)
    return (sa.exc.SQLAlchemyError, DagsterPostgresException)


def record_failure(instance: dg.DagsterInstance, run_id: str, message: str) -> bool:
    """Record the run as failed, trying for `RECORD_SECONDS` while the database is away; True
    once recorded (or when the run never reached the instance)."""
    deadline = time.monotonic() + RECORD_SECONDS
    while True:
        try:
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                instance.report_run_failed(run, message)
            return True
        except database_errors():
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)


class Supervisor:
    """Runs `execute` on a thread and watches it from the main thread (see the module)."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, watch: InstanceWatch) -> None:
        self.instance = instance
        self.run_id = run_id
        self.watch = watch
        self.out = sys.stderr

    def run(self, execute: Callable[[], T]) -> T:
        future: Future[T] = Future()

        def target() -> None:
            try:
                future.set_result(execute())
            except BaseException as exc:  # handed to the main thread as it is
                future.set_exception(exc)

        handlers = {sig: signal.signal(sig, _raise_signalled) for sig in EXIT_CODES}
        try:
            threading.Thread(target=target, name="dagster-run", daemon=True).start()
            while not future.done():
                if self.watch.down.is_set():
                    self.lost_instance()
                time.sleep(POLL_SECONDS)
        except Signalled as stop:
            self.signalled(stop.signum)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        error = future.exception()
        if isinstance(error, database_errors()) and instance_database() is not None:
            self.lost_instance()
        return future.result()

    def _silence_the_run(self) -> None:
        """The run goes on until the process exits: nothing more of it reaches the console
        (Dagster writes its failed event writes straight to sys.stderr)."""
        logging.getLogger(CONSOLE_LOGGER).disabled = True
        if not self.watch.verbose:
            sys.stderr = sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (until the exit)

    def _say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _exit(self, code: int) -> NoReturn:
        """Exit now: the run's threads (a worker in a rate-limit pause, a step waiting on the
        database) are not waited for."""
        self.out.flush()
        os._exit(code)

    def signalled(self, signum: int) -> NoReturn:
        name = signal.Signals(signum).name
        self._silence_the_run()
        message = f"make run received {name} and stopped"
        try:
            run = self.instance.get_run_by_id(self.run_id)
            if run is not None and not run.is_finished:
                self.instance.report_run_canceled(run, message)
            recorded = f"run {self.run_id} recorded as canceled"
        except database_errors() as exc:
            recorded = (
                f"run {self.run_id} could not be recorded as canceled ({_masked(str(exc))}): "
                "`make doctor` names it"
            )
        self._say(
            f"Stopped by {name}: {recorded}; committed months stay, the step being loaded "
            "keeps its months' previous rows."
        )
        self._exit(EXIT_CODES.get(signal.Signals(signum), 128 + signum))

    def lost_instance(self) -> NoReturn:
        self._silence_the_run()
        where = instance_database() or "the Dagster instance's database"
        reason = f": {self.watch.reason}" if self.watch.reason else ""
        self._say(f"error: the Dagster instance's database stopped answering, {where}{reason}")
        self._say(
            f"Stopped run {self.run_id}: Dagster cannot record it. Committed months stay; the "
            "step being loaded keeps its months' previous rows."
        )
        self._say(f"Waiting up to {RECORD_SECONDS:.0f} s for the database to record it as failed…")
        message = f"the instance's database stopped answering ({where}); make run stopped"
        if record_failure(self.instance, self.run_id, message):
            self._say(f"The database is back: run {self.run_id} recorded as failed.")
        else:
            self._say(
                f"The database did not come back: run {self.run_id} stays STARTED in the "
                "instance; once the database answers, `make doctor` names it (terminate it in "
                "the UI, or run monitoring fails it)."
            )
        self._say(
            f"What to do: start the database or fix {POSTGRES_URL_ENV} (`make doctor` checks "
            "it), then run again."
        )
        self._exit(1)


def unreachable_at_start(watch: InstanceWatch, error: BaseException) -> list[str]:
    """The lines for an instance that cannot be opened at all (before any run exists)."""
    where = instance_database() or "the Dagster instance's database"
    reason = watch.reason or _masked(str(getattr(error, "orig", None) or error))
    return [
        f"error: the Dagster instance's database does not answer, {where}: {reason}",
        f"Nothing was loaded. Start the database or fix {POSTGRES_URL_ENV} (`make doctor` "
        "checks it), then run again.",
    ]
