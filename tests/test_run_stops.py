"""`make run` stopped from outside: a SIGTERM during a long rate-limit pause, and the instance's
PostgreSQL going away mid-run. Each ends in seconds, in a few lines, with the run recorded where
the instance can be written."""

import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from pipeline.cli.doctor.instance import check_dagster
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.faults import Fault

INVOICE_LIST = r"^/v2/customers/my/invoices$"


class Run:
    """`python -m pipeline.cli.run` as `make run` starts it, against `server`, its output read
    line by line on a thread so the test can wait for a line with a timeout."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli.run"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 180) -> str:
        """The first line from now on that holds `text`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in:\n" + "\n".join(self.lines)) from None
            assert line is not None, "the run ended first:\n" + "\n".join(self.lines)
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, timeout: float = 180) -> int:
        """Its exit code, once every line is read."""
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=30)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_run(run_against) -> Callable[..., Run]:
    """`start_run(home, server, **env)`: a run of the last two months (short, and any day has
    them) against `server`, its instance in `home`."""

    def start(home: Path, server: SandboxServer, **env: str) -> Run:
        two_months = previous_month(month_of(datetime.now(UTC)))
        return Run(home, run_against(home, server, INVOICE_START_PERIOD=two_months, **env))

    return start


def sqlite_run_statuses(home: Path) -> list[str]:
    with sqlite3.connect(home / "data" / "dagster" / "history" / "runs.db") as con:
        return [status for (status,) in con.execute("SELECT status FROM runs")]


def postgres_run_statuses(url: str) -> list[str]:
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs")
        return [status for (status,) in cur.fetchall()]


@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "Ctrl-C"]
)
def test_a_stop_during_a_long_rate_limit_pause_ends_the_run_in_seconds(
    tmp_path, start_run, stop, code
):
    """The invoice list answers `ratelimit-remaining: 0` for ten minutes: every request after it
    waits. Before, the process sat out the pause (minutes); now it exits at once, canceled, in
    one line, and the next run works."""
    with SandboxServer() as server:
        server.inject(INVOICE_LIST, Fault("exhausted", seconds=600))
        run = start_run(tmp_path, server)
        try:
            run.wait_for("until ratelimit-reset")
            time.sleep(1.0)  # well inside the pause: the items wait behind it
            sent = time.monotonic()
            run.proc.send_signal(stop)
            exit_code = run.finish(timeout=60)
            took = time.monotonic() - sent
        finally:
            run.kill()
        assert exit_code == code
        assert took < 15, f"{took:.1f}s"
        stopped = [line for line in run.lines if line.startswith("Stopped by ")]
        assert stopped == [run.lines[-1]] and "recorded as canceled" in stopped[0]
        assert "Traceback" not in "\n".join(run.lines)
        assert sqlite_run_statuses(tmp_path) == ["CANCELED"]
        again = start_run(tmp_path, server)
        try:
            assert again.finish(timeout=240) == 0, "\n".join(again.lines)
        finally:
            again.kill()
    assert sorted(sqlite_run_statuses(tmp_path)) == ["CANCELED", "SUCCESS"]


def stop_postgres_mid_run(start_run, tmp_path: Path, server: SandboxServer, postgres) -> Run:
    """A run whose instance is `postgres`, and the server stopped (as in a crash) once the
    run is some steps in; the invoice list stalls 3 s so the run is surely still going."""
    server.inject(INVOICE_LIST, Fault("stall", seconds=3.0))
    run = start_run(tmp_path, server, DAGSTER_POSTGRES_URL=postgres.url)
    run.wait_for("droplets: ")
    postgres.stop("immediate", check=True)
    return run


def test_an_instance_database_that_stops_mid_run_fails_it_in_a_few_lines(
    tmp_path, postgres_server, start_run
):
    """Before: 330 lines of tracebacks over 80 s, exit 1, the run left STARTED with no word."""
    with SandboxServer() as server:
        run = stop_postgres_mid_run(start_run, tmp_path, server, postgres_server)
        try:
            code = run.finish(timeout=120)
        finally:
            run.kill()
    out = "\n".join(run.lines)
    assert code == 1, out
    assert len(run.lines) <= 30, out
    assert "Traceback" not in out and "secret-pw" not in out and "WARNING:root" not in out
    where = f"PostgreSQL at 127.0.0.1:{postgres_server.port}/postgres (DAGSTER_POSTGRES_URL)"
    (error,) = [line for line in run.lines if line.startswith("error: ")]
    assert error.startswith(f"error: the Dagster instance's database stopped answering, {where}")
    assert "Connection refused" in error
    assert run.lines[-2].startswith("The database did not come back: run ")
    assert "`make doctor` names it" in run.lines[-2]
    assert run.lines[-1].startswith("What to do: start the database or fix DAGSTER_POSTGRES_URL")
    postgres_server.start()
    assert postgres_run_statuses(postgres_server.url) == ["STARTED"]
    run_id = run.lines[-2].removeprefix("The database did not come back: run ").split()[0]
    env = {"DAGSTER_HOME": str(tmp_path), "DAGSTER_POSTGRES_URL": postgres_server.url}
    found = check_dagster(env)
    assert found.ok is False
    assert found.detail.startswith(
        f"1 run(s) STARTED with no live process, holding the queue: run {run_id} (process "
    )


def test_an_instance_database_back_before_the_exit_records_the_run_failed(
    tmp_path, postgres_server, start_run
):
    with SandboxServer() as server:
        run = stop_postgres_mid_run(start_run, tmp_path, server, postgres_server)
        try:
            run.wait_for("Waiting up to ", timeout=60)
            postgres_server.start()
            code = run.finish(timeout=120)
        finally:
            run.kill()
    assert code == 1
    assert any(line.startswith("The database is back: run ") for line in run.lines), run.lines
    assert postgres_run_statuses(postgres_server.url) == ["FAILURE"]
