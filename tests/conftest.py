"""Shared fixtures: a sandbox API on loopback, a client for it, a fresh warehouse file, and the
helpers several test modules use (materialize, rows, failure_message, …).

Test modules never import from each other or from this file: what they share is a fixture here.
Helpers that return functions are session-scoped (they hold no state), so module-scoped fixtures
can use them too.
"""

import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg
import duckdb
import pytest
import requests

from pipeline.alerts import delivery as notify
from pipeline.api import DigitalOceanClient, Pacer, RetryPolicy
from pipeline.dagster_storage import HOST_TAG
from pipeline.defs.definitions import source_defs
from pipeline.defs.resources import AlertsResource, DigitalOceanResource, WarehouseResource
from pipeline.engine import batches
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.settings import Settings, load_settings
from pipeline.sources import INVOICES
from pipeline.sources.invoices import INVOICE_PATH
from pipeline.teams import Account
from tests import scenarios

FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def teams_sandbox() -> Iterator[SandboxServer]:
    """A sandbox serving three teams, one token each (`sandbox.tokens`, in order)."""
    with SandboxServer.with_teams(build_teams(3)) as server:
        yield server


def new_client(server: SandboxServer, token: str | None = None, **kwargs) -> DigitalOceanClient:
    """A client for the sandbox with fast retries and no pacing (its first team's token, or
    `token`); options override."""
    options = {"retry": FAST_RETRY, "timeout": 2.0, "pacer": Pacer(None, None)}
    return DigitalOceanClient(server.url, token or server.token, **{**options, **kwargs})


@pytest.fixture(scope="session")
def make_client() -> Callable[..., DigitalOceanClient]:
    """`make_client(server, token=None, **options)`: a client for `server` (one of its teams'
    tokens), fast retries, no pacing."""
    return new_client


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[DigitalOceanClient]:
    with new_client(sandbox) as api:
        yield api


@pytest.fixture(scope="session")
def load_team() -> Callable[..., batches.TeamLoad]:
    """A step of one team: `engine.load_teams`, the path the assets run, for one token's client.
    The team's failure is raised as itself, as the cause the step names."""

    def load(
        source: Any, api: DigitalOceanClient, store: Any, periods: Sequence[str], position: int = 1
    ) -> batches.TeamLoad:
        account = Account(position, f"token {position} of DIGITALOCEAN_TOKENS", api)
        outcome = batches.load_teams(source, [account], store, periods, logging.getLogger("tests"))
        if outcome.failures:
            raise outcome.failures[0][1]
        (loaded,) = outcome.results.values()
        return loaded

    return load


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def sandbox_resources(server: SandboxServer, warehouse_path: Path, **api_options) -> dict:
    """The pipeline's resources pointed at a sandbox and a warehouse file: one token, or, for a
    sandbox serving several teams, all of theirs as DIGITALOCEAN_TOKENS would list them."""
    tokens = {"token": server.token}
    if len(server.tokens) > 1:
        tokens = {"token": ", ".join(server.tokens), "token_env": "DIGITALOCEAN_TOKENS"}
    return {
        "digitalocean": DigitalOceanResource(
            **tokens, api_url=server.url, timeout_seconds=2.0, **api_options
        ),
        "warehouse": WarehouseResource(path=str(warehouse_path), lock_timeout_seconds=10),
        # The alert settings of the moment (a test sets them in the environment first).
        "alerts": AlertsResource.from_settings(load_settings()),
    }


@pytest.fixture(scope="session")
def pipeline_resources() -> Callable[..., dict]:
    """`pipeline_resources(server, warehouse_path, **api_options)`: the run's resources."""
    return sandbox_resources


@pytest.fixture(scope="session")
def materialize(
    pipeline_resources: Callable[..., dict],
) -> Callable[..., dg.ExecuteInProcessResult]:
    """`materialize(server, warehouse_path, first, last=None, *, raise_on_error=True,
    assets=None, **kw)`: one in-process run of the months `first`…`last` (one month when `last`
    is None), as the single-run backfill the UI launches. `assets` defaults to the invoices
    source's assets and checks; `kw` goes to `dagster.materialize`."""

    def run(
        server: SandboxServer,
        warehouse_path: Path,
        first: str,
        last: str | None = None,
        *,
        raise_on_error: bool = True,
        assets: Sequence[Any] | None = None,
        **kw: Any,
    ) -> dg.ExecuteInProcessResult:
        if assets is None:
            assets = source_defs(INVOICES)
        tags = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first,
        }
        return dg.materialize(
            assets,
            resources=pipeline_resources(server, warehouse_path),
            tags=tags,
            raise_on_error=raise_on_error,
            **kw,
        )

    return run


@pytest.fixture(scope="session")
def rows() -> Callable[..., list[tuple]]:
    """`rows(path, sql, params=None)`: every row of a query on the warehouse file, read-only."""

    def query(path: Path, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(sql, params).fetchall()

    return query


@pytest.fixture(scope="session")
def failure_message() -> Callable[[dg.ExecuteInProcessResult], str]:
    """`failure_message(result)`: the step failures' messages, with the user error each wraps."""

    def messages(result: dg.ExecuteInProcessResult) -> str:
        found = []
        for event in result.all_events:
            error = event.step_failure_data.error if event.is_step_failure else None
            while error is not None:
                found.append(error.message)
                error = error.cause
        return "\n".join(found)

    return messages


@pytest.fixture(scope="session")
def invoice_of() -> Callable[[SandboxServer, str], dict]:
    """`invoice_of(server, month)`: the month's one final invoice, as the sandbox lists it."""

    def find(server: SandboxServer, month: str) -> dict:
        return server.data.invoice_for(month)

    return find


@pytest.fixture(scope="session")
def plant_anomalies() -> Callable[..., list[scenarios.PlantedAnomaly]]:
    """`plant_anomalies(data, spike_day, new_sku_from)`: a spike and a new SKU planted in the
    account's Insights points, in place; returns them with the alert keys they should raise
    (tests/scenarios.py)."""
    return scenarios.plant_anomalies


@pytest.fixture(scope="session")
def bill_to() -> Callable[..., dict[str, str]]:
    """`bill_to(data, resource_uuid, lines=2)`: lines of the latest closed month and of the
    preview attributed to `resource_uuid`, in place, no total changed; returns each month's
    planted amount (tests/scenarios.py)."""
    return scenarios.bill_to


@pytest.fixture(scope="session")
def page_body() -> Callable[..., dict]:
    """`page_body(server, uuid, page, per_page=200)`: the JSON body the sandbox serves for
    that page of the invoice's items (to alter and inject)."""

    def body(server: SandboxServer, uuid: str, page: int, per_page: int = 200) -> dict:
        status, answer = server.respond(
            INVOICE_PATH.format(key=uuid), {"page": [str(page)], "per_page": [str(per_page)]}
        )
        assert status == 200
        return answer

    return body


@pytest.fixture(scope="session")
def load_month(materialize: Callable[..., dg.ExecuteInProcessResult]) -> Callable[..., Any]:
    """`load_month(server, warehouse_path, month, **kw)`: materialize one month, never raising."""

    def load(server: SandboxServer, warehouse_path: Path, month: str, **kw: Any):
        return materialize(server, warehouse_path, month, raise_on_error=False, **kw)

    return load


@pytest.fixture(scope="session")
def month_rows(rows: Callable[..., list[tuple]]) -> Callable[[Path, str], list[tuple]]:
    """`month_rows(warehouse_path, month)`: count, sum(amount) and min(loaded_at) of the month's
    items: equal before and after a run exactly when the run changed nothing."""

    def summary(warehouse_path: Path, month: str) -> list[tuple]:
        return rows(
            warehouse_path,
            "SELECT count(*), sum(amount), min(loaded_at) FROM invoice_items "
            "WHERE invoice_period = ?",
            [month],
        )

    return summary


WAREHOUSE_BEFORE_MIGRATIONS = (
    Path(__file__).parent / "fixtures" / "warehouse_made_before_migrations.duckdb"
)


@pytest.fixture
def old_warehouse(tmp_path: Path) -> Path:
    """A copy of a warehouse file made before schema migrations existed (tests/fixtures)."""
    path = tmp_path / "old_warehouse.duckdb"
    path.write_bytes(WAREHOUSE_BEFORE_MIGRATIONS.read_bytes())
    return path


# -- the official OpenAPI file as a contract ---------------------------------------------------
SPEC_FILE = Path(__file__).parents[1] / "spec/digitalocean/billing.bundled.json"
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class OpenApi:
    """The subset of JSON Schema the billing responses use (type, properties, required, items,
    allOf, anyOf, enum, format date/date-time). Null is accepted for an optional field (the
    sandbox sends it on purpose, to exercise NULL paths); a field the spec does not declare is an
    error, so the sandbox cannot drift from the spec unnoticed."""

    # Fields the real API sends that its spec does not declare (the CSV export documents them).
    BEYOND_SPEC = frozenset({"category"})

    def __init__(self, spec: dict) -> None:
        self.spec = spec

    def schema(self, path: str, status: int) -> dict:
        responses = self.spec["paths"][path]["get"]["responses"]
        answer = responses.get(str(status), responses.get("default"))
        return answer["content"]["application/json"]["schema"]

    def errors(self, value: Any, schema: dict, where: str = "$") -> list[str]:
        """Where `value` breaks `schema`."""
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            for part in schema["allOf"]:
                if "anyOf" in part or "allOf" in part or part.get("type") != "object":
                    return [e for p in schema["allOf"] for e in self.errors(value, p, where)]
                merged["properties"].update(part.get("properties", {}))
                merged["required"] += part.get("required", [])
            return self.errors(value, merged, where)
        if "anyOf" in schema:
            tries = [self.errors(value, option, where) for option in schema["anyOf"]]
            return [] if any(not t for t in tries) else min(tries, key=len)
        expected = schema.get("type")
        if expected and not isinstance(value, JSON_TYPES[expected]):
            return [f"{where}: expected {expected}, got {type(value).__name__} {value!r:.40}"]
        if expected == "integer" and isinstance(value, bool):
            return [f"{where}: expected integer, got bool"]
        errors = []
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{where}: {value!r:.40} is not in the enum")
        if isinstance(value, str):
            errors += self._format_errors(value, schema.get("format"), where)
        if isinstance(value, dict) and "properties" in schema:
            declared, required = schema["properties"], schema.get("required", [])
            errors += [f"{where}: missing {k}" for k in required if k not in value]
            errors += [
                f"{where}: {k} is not in the spec"
                for k in value
                if k not in declared and k not in self.BEYOND_SPEC
            ]
            for key, item in value.items():
                if key in declared and not (item is None and key not in required):
                    errors += self.errors(item, declared[key], f"{where}.{key}")
        if isinstance(value, list) and "items" in schema:
            for n, item in enumerate(value):
                errors += self.errors(item, schema["items"], f"{where}[{n}]")
        return errors

    @staticmethod
    def _format_errors(value: str, fmt: str | None, where: str) -> list[str]:
        pattern = {"date": DATE, "date-time": DATE_TIME}.get(fmt or "")
        if pattern is None:
            return []
        try:
            if not pattern.match(value):
                raise ValueError
            if fmt == "date":
                date.fromisoformat(value)
            else:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return [f"{where}: {value!r:.40} is not a {fmt}"]
        return []


@pytest.fixture(scope="session")
def openapi() -> OpenApi:
    return OpenApi(json.loads(SPEC_FILE.read_text()))


@pytest.fixture(scope="session")
def api_get() -> Callable[..., requests.Response]:
    """A plain GET to a sandbox (never the pipeline's client), with its token or another."""

    def get(server: SandboxServer, path: str, token: str | None = None, **params: Any):
        token = server.token if token is None else token
        return requests.get(
            server.url + path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
            allow_redirects=False,
        )

    return get


# -- what a test needs from the machine ---------------------------------------------------------
def under_ci(env: dict[str, str] | None = None) -> bool:
    """Whether the suite runs as CI runs it (`CI` set, as CI services and .ci/run set it)."""
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """A test that needs what this machine cannot start (PostgreSQL, Chromium) is skipped, but
    fails under CI: a green CI must mean those tests ran."""
    if under_ci():
        pytest.fail(f"{reason} (CI is set: a test that cannot start what it needs fails)")
    pytest.skip(reason)


# -- a run left STARTED: its process killed as the OOM killer would ------------------------------
KILLED_RUN = """
import json, os, signal, sys, time, dagster as dg

@dg.asset
def killed(context: dg.AssetExecutionContext) -> None:
    print("started", context.run_id, os.getpid(), flush=True)
    if sys.argv[3] == "wait":  # alive until the test kills it
        time.sleep(600)
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no event

with dg.DagsterInstance.get() as instance:
    tags = {"dagster/max_runtime": sys.argv[1], **json.loads(sys.argv[2])}
    dg.materialize([killed], instance=instance, tags=tags)
"""


def _run_process(
    home: Path, max_runtime: int, tags: dict[str, str] | None, env: dict[str, str] | None, end: str
) -> subprocess.Popen:
    tags = {HOST_TAG: socket.gethostname()} if tags is None else tags
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(max_runtime), json.dumps(tags), end],
        cwd=home,
        env={**os.environ, "DAGSTER_HOME": str(home), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _started(line: str) -> tuple[str, int]:
    _, run_id, pid = line.split()
    return run_id, int(pid)


@pytest.fixture(scope="session")
def killed_run() -> Callable[..., tuple[str, int]]:
    """`killed_run(home, max_runtime=14400, tags=None, env=None)`: a run in the instance at
    `home` (its dagster.yaml already there; `env` adds variables, DAGSTER_POSTGRES_URL for one in
    PostgreSQL) whose process is SIGKILLed mid-step, leaving the run STARTED; tagged with this
    host as `make run` tags its runs, unless `tags` says otherwise. Its run id and process id."""

    def run(
        home: Path,
        max_runtime: int = 14400,
        tags: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[str, int]:
        proc = _run_process(home, max_runtime, tags, env, "kill")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == -9 and "started" in out, err
        (line,) = [line for line in out.splitlines() if line.startswith("started ")]
        return _started(line)

    return run


@pytest.fixture
def live_run() -> Iterator[Callable[..., tuple[str, int, subprocess.Popen]]]:
    """`live_run(home, tags=None, env=None)`: like `killed_run`, but the run's process waits in
    its step, alive, until the test kills it (or the test ends). Its run id, process id and
    process."""
    procs: list[subprocess.Popen] = []

    def run(
        home: Path, tags: dict[str, str] | None = None, env: dict[str, str] | None = None
    ) -> tuple[str, int, subprocess.Popen]:
        proc = _run_process(home, 14400, tags, env, "wait")
        procs.append(proc)
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("started "):
                return (*_started(line), proc)
        raise AssertionError(proc.stderr.read() if proc.stderr else "no run started")

    try:
        yield run
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()


@pytest.fixture
def repo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml (SQLite, or PostgreSQL when
    DAGSTER_POSTGRES_URL is set), the working directory its storage paths are relative to."""
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    return tmp_path


class PostgresServer:
    """A throwaway PostgreSQL server (Debian's `initdb` and `pg_ctl`, which .ci/run installs)
    in `folder` on a free loopback port; as the `postgres` user when the tests run as root,
    since PostgreSQL refuses root. `stop()` and `start()` it to play an outage."""

    def __init__(self, folder: Path) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if initdb is None or pg_ctl is None:
            unavailable("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
        self.pg_ctl = pg_ctl
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chmod(folder, 0o777)
            os.chown(folder, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self.prefix, initdb, "-D", str(self.data), "-U", "dagster", "--auth=trust"]
            + ["-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql://dagster:secret-pw@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        # Each session's start and end in the log, with its process and application names.
        options += " -c log_connections=on -c log_disconnections=on -c 'log_line_prefix=%p|%a|'"
        log = str(self.folder / "log")
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), "-o", options, "-l", log]
            + ["-w", "start"],
            check=True,
            capture_output=True,
        )

    def peak_connections(self, leave_out: str) -> int:
        """The most client sessions the server held at once, from its log, leaving out those
        whose application name is `leave_out` (a test's own)."""
        log = (self.folder / "log").read_text(errors="replace")
        open_now = peak = 0
        for line in log.splitlines():
            parts = line.split("|", 2)  # process id, application name, message
            if len(parts) != 3 or parts[1] == leave_out:
                continue
            if "connection authorized:" in parts[2]:
                open_now += 1
                peak = max(peak, open_now)
            elif "disconnection: session time" in parts[2]:
                open_now -= 1
        return peak

    def stop(self, mode: str = "fast", *, check: bool = False) -> None:
        """`immediate` plays a crash: connections drop, nothing is shut down cleanly."""
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=check,
            capture_output=True,
        )


@contextmanager
def postgres_folder() -> Iterator[Path]:
    """A folder for a server's files directly in the system's temporary folder: pytest's own
    base folder is made private (0700) again by every pytest session that starts on the machine,
    after which the `postgres` user could no longer reach the server's files to stop it."""
    folder = Path(tempfile.mkdtemp(prefix="do-billing-postgres-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session (`PostgresServer`): its `postgresql://`
    URL; stopped after the session."""
    with postgres_folder() as folder:
        server = PostgresServer(folder)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server of the test's own, started, which the test may stop and
    start again (an outage); stopped after the test."""
    with postgres_folder() as folder:
        server = PostgresServer(folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()


# -- processes and a browser, for the tests that drive `make dev` and `make dashboard` ----------
REPO = Path(__file__).resolve().parents[1]
# Chromium as root in a machine without outside network: no sandbox, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def port() -> Callable[[], int]:
    """`port()`: a free loopback port."""
    return free_port


@contextmanager
def _make(target: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`make <target…>` as a person runs it, in its own session, its output in `log`; stopped
    with SIGTERM (then SIGKILL) for the whole group at the end."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["make", "-C", str(REPO), *target],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def make_process() -> Callable[..., Any]:
    """`with make_process([target, VAR=…], env, log) as proc:` a `make` target as a process."""
    return _make


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium through Playwright; skipped where Debian's Chromium is not installed (failed
    under CI)."""
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        unavailable(f"no Chromium at {path}")
    from playwright import sync_api as playwright_sync

    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def lock() -> Iterator[Callable[[Path], None]]:
    """`lock(path)`: make a file or folder unwritable to this process, for real.

    Permission bits bind an ordinary user; root writes past them (and os.access rightly says
    so), so as root the path is made immutable (`chattr +i`), which binds root too. Each lock
    is proven by a write that fails; where neither works, the test is skipped."""
    locked: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555 if path.is_dir() else 0o444)
        else:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"running as root and chattr +i failed: {done.stderr!r}")
        locked.append(path)
        probe = path / "probe" if path.is_dir() else path
        with pytest.raises(PermissionError):
            probe.open("a").close()

    try:
        yield make
    finally:
        for path in locked:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(path)], check=True)
            path.chmod(0o755 if path.is_dir() else 0o644)


def _run_against(home: Path, server: SandboxServer, **env: str) -> dict[str, str]:
    """The environment of `python -m pipeline.cli.run` in `home` as `make run` starts it,
    against `server` with all its tokens: none of the machine's settings, the instance and
    both warehouses in `home`, this checkout's package."""
    tokens = server.tokens
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DIGITALOCEAN", "DAGSTER", "VERBOSE"))
        },
        "HOME": str(home),
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_PATH": str(home / "warehouse.duckdb"),
        "SANDBOX_WAREHOUSE_PATH": str(home / "sandbox.duckdb"),
        "DIGITALOCEAN_API_URL": server.url,
        "PYTHONPATH": str(REPO),
        **(
            {"DIGITALOCEAN_TOKENS": ", ".join(tokens)}
            if len(tokens) > 1
            else {"DIGITALOCEAN_TOKEN": tokens[0]}
        ),
        **env,
    }


@pytest.fixture(scope="session")
def run_against() -> Callable[..., dict[str, str]]:
    """`run_against(home, server, **env)`: the environment of a `make run` process in `home`
    against a sandbox `server` (its dagster.yaml copied there first)."""

    def env(home: Path, server: SandboxServer, **more: str) -> dict[str, str]:
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        return _run_against(home, server, **more)

    return env


# -- alerts: a webhook on loopback, and the settings of the moment ------------------------------
ALERT_SECRET_PATH = "hook/T0KEN-s3cr3t-webhook-path"


class Receiver:
    """A webhook on loopback that records every POST body and answers `status`."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/{ALERT_SECRET_PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def alert_env(monkeypatch, tmp_path):
    """`alert_env(**variables)`: the process settings with these variables (and no `.env`)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(notify, "WAIT_SECONDS", 0.01)

    def set_env(**variables: str) -> Settings:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return load_settings()

    yield set_env
