"""The deployment as teams run it, each a process of its own around one instance in PostgreSQL:
the project's code server, another project's code server, a webserver and one daemon, started by
`python -m pipeline.cli.services` (`make services`) with another workspace's entry (`--also`).

In one topology, shared by the steps: a `dagster asset materialize` run, as a terminal or cron
starts one, is killed with SIGKILL in its step (its API never answers, so it cannot end by
itself); a two-month backfill is launched through the webserver's GraphQL API, as the UI
launches one, and waits behind the dead run in the warehouse's one-writer pool; the daemon's
dead-run sensor marks the dead run failed within 3 minutes, naming the run and its step; the
backfill then completes with the sandbox's exact invoices and line items. Stopping the services
process stops them all. The peak count of PostgreSQL connections is printed (and written to
test-output/topology.txt). `make doctor` naming a stuck run on PostgreSQL and on SQLite is
tests/test_doctor.py's (`test_a_killed_run_in_postgres_is_named_by_the_same_check`, …).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import requests
import yaml

from pipeline.dagster_storage import HOST_TAG

pytestmark = pytest.mark.topology

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSETS = ["raw_invoice_pages", "invoices", "invoice_items"]
MONTHS = ["2024-01", "2024-02"]
DEAD_RUN_LIMIT_SECONDS = 180
START_SECONDS = 180
# The sensor's interval in the test; 60 s (the default) in a deployment.
SENSOR_SECONDS = 5

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""
LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


TEST_APP = "topology-test"


class Postgres:
    """The test's own view of the instance's database: statuses and events by plain SQL, on one
    connection named `TEST_APP` (left out of the peak count)."""

    def __init__(self, url: str) -> None:
        self.query = psycopg2.connect(url, application_name=TEST_APP)
        self.query.autocommit = True

    def one(self, sql: str, *args: object) -> list[tuple]:
        """The rows of a query; none before the services made Dagster's tables."""
        with self.query.cursor() as cur:
            try:
                cur.execute(sql, args)
            except psycopg2.errors.UndefinedTable:
                return []
            return cur.fetchall()

    def __enter__(self) -> "Postgres":
        return self

    def __exit__(self, *exc: object) -> None:
        self.query.close()


def wait_for(what: str, check: Callable[[], object], seconds: float, logs: list[Path]) -> object:
    """`check()`'s first truthy answer, polled; else a failure naming `what`, with the logs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    tails = "\n".join(f"== {log.name}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"{what}: not within {seconds} s\n{tails}")


@contextmanager
def process(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator:
    """A process in a session of its own, its output in `log`; SIGTERM to it at the end (the
    services process stops its services itself), SIGKILL to the group after 60 s."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def graphql(port: int, query: str, **variables: object) -> dict:
    response = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": query, "variables": variables},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def locations_loaded(port: int) -> list[str] | None:
    try:
        data = graphql(port, LOCATIONS)
    except requests.ConnectionError:
        return None
    entries = (data.get("workspaceOrError") or {}).get("locationEntries") or []
    loaded = [
        e["name"]
        for e in entries
        if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
    ]
    return sorted(loaded) if len(loaded) == 2 else None


def expected_rows(sandbox, months: list[str]) -> tuple[list[tuple], list[tuple]]:
    """The sandbox's invoices of the months, and per invoice its count and sum of items."""
    invoices = [sandbox.data.invoice_for(m) for m in months]
    items = [sandbox.data.items[i["invoice_uuid"]] for i in invoices]
    return (
        [(i["invoice_uuid"], i["invoice_period"], Decimal(i["amount"])) for i in invoices],
        [
            (i["invoice_uuid"], len(lines), sum(Decimal(line["amount"]) for line in lines))
            for i, lines in zip(invoices, items, strict=True)
        ],
    )


INVOICES_LOADED = (
    "SELECT invoice_uuid, invoice_period, amount FROM invoices ORDER BY invoice_period"
)
ITEMS_LOADED = (
    "SELECT i.invoice_uuid, count(*), sum(it.amount) FROM invoices i JOIN invoice_items it "
    "USING (invoice_uuid) GROUP BY i.invoice_uuid, i.invoice_period ORDER BY i.invoice_period"
)


@pytest.fixture
def silent_api() -> Iterator[str]:
    """An API address that accepts connections and never answers: a run reading it stays in
    its step until its process is killed."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_the_deployment_topology(
    postgres_server, sandbox, silent_api, tmp_path, port, monkeypatch, rows
):
    began = time.monotonic()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    url = postgres_server.url
    web_port, code_port, other_port = port(), port(), port()
    other = home / "other-workspace.yaml"
    other.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": other_port,
                            "location_name": "other_project",
                        }
                    }
                ]
            }
        )
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DIGITALOCEAN", "DAGSTER", "WAREHOUSE", "SANDBOX"))
    }
    base |= {"DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": url}
    services_env = base | {
        "DIGITALOCEAN_TOKEN": sandbox.token,
        "DIGITALOCEAN_API_URL": sandbox.url,
        "WAREHOUSE_PATH": str(home / "warehouse.duckdb"),
        "DEAD_RUN_CHECK_SECONDS": str(SENSOR_SECONDS),
    }
    cli_env = base | {
        "DIGITALOCEAN_TOKEN": "cron-token",
        "DIGITALOCEAN_API_URL": silent_api,
        "WAREHOUSE_PATH": str(home / "cron.duckdb"),
    }
    logs = [tmp_path / name for name in ("services.log", "other.log", "cron.log")]
    other_server = [str(BIN / "dagster"), "api", "grpc", "-f", str(REPO / "tests/fixtures")]
    other_server[-1] += "/other_location.py"
    other_server += ["-h", "127.0.0.1", "-p", str(other_port), "--location-name", "other_project"]
    services = [sys.executable, "-m", "pipeline.cli.services", "--port", str(web_port)]
    services += ["--code-port", str(code_port), "--also", str(other)]
    cron = [str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline.defs.definitions"]
    cron += ["--select", ",".join(ASSETS), "--partition", "2024-03"]

    with (
        Postgres(url) as pg,
        process(other_server, base, home, logs[1]),
        process(services, services_env, home, logs[0]) as services_proc,
    ):
        # A run from a terminal, in its step, while the services start; then killed.
        with process(cron, cli_env, home, logs[2]) as cron_proc:
            dead_id = wait_for(
                "the terminal's run in its step",
                lambda: pg.one(
                    "SELECT r.run_id FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
                    "JOIN event_logs e ON e.run_id = r.run_id WHERE r.status = 'STARTED' "
                    "AND t.key = %s AND e.dagster_event_type = 'STEP_START'",
                    HOST_TAG,
                ),
                START_SECONDS,
                logs,
            )[0][0]
            assert wait_for("both code locations", lambda: locations_loaded(web_port), 120, logs)
            os.killpg(cron_proc.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            cron_proc.wait()

        # Launched as the UI launches a backfill, after the kill: it waits for the dead run.
        params = {"assetSelection": [{"path": [a]} for a in ASSETS], "partitionNames": MONTHS}
        launched = graphql(web_port, LAUNCH, params=params)["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = launched["backfillId"]

        wait_for(
            "the dead run marked failed",
            lambda: pg.one("SELECT 1 FROM runs WHERE run_id = %s AND status = 'FAILURE'", dead_id),
            DEAD_RUN_LIMIT_SECONDS,
            logs,
        )
        dead_seconds = time.monotonic() - killed_at

        def backfill_runs() -> list[tuple] | None:
            runs = pg.one(
                "SELECT r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
                "WHERE t.key = 'dagster/backfill' AND t.value = %s",
                backfill,
            )
            assert all(
                s in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS") for (s,) in runs
            ), runs
            return runs if runs and all(s == "SUCCESS" for (s,) in runs) else None

        wait_for("the backfill's runs", backfill_runs, 240, logs)

        # Stopping the services process stops every service.
        services_proc.send_signal(signal.SIGTERM)
        assert services_proc.wait(timeout=60) == 0
        assert "services: stopped" in logs[0].read_text()
        for gone in (web_port, code_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", gone), timeout=2).close()

    peak = postgres_server.peak_connections(leave_out=TEST_APP)
    warehouse = home / "warehouse.duckdb"
    loaded = (rows(warehouse, INVOICES_LOADED), rows(warehouse, ITEMS_LOADED))
    assert loaded == expected_rows(sandbox, MONTHS)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    monkeypatch.chdir(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        dead = instance.get_run_by_id(dead_id)
        messages = [
            e.message for e in instance.all_logs(dead_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        ]
    assert dead is not None and dead.tags[HOST_TAG] == socket.gethostname()
    assert messages[0].startswith(f"Run {dead_id} of job __ASSET_JOB was STARTED but its process ")
    assert (
        " is gone (killed: SIGKILL, the OOM killer or a reboot) in step invoice_tables. "
        in messages[0]
    )
    assert messages[0].endswith(
        "are kept; load 2024-03 again (`make backfill FROM=2024-03 TO=2024-03`, or Re-execute "
        "the run in the UI)."
    )
    summary = (
        f"topology: dead run marked failed {dead_seconds:.0f} s after its SIGKILL (sensor every "
        f"{SENSOR_SECONDS} s); peak PostgreSQL connections {peak}; "
        f"test {time.monotonic() - began:.0f} s"
    )
    print(summary)
    (REPO / "test-output").mkdir(exist_ok=True)
    (REPO / "test-output" / "topology.txt").write_text(summary + "\n")
    assert dead_seconds < DEAD_RUN_LIMIT_SECONDS
