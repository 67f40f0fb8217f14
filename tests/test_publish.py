"""Readers and the writer never share a file: the loader writes its working file and publishes
the analysts' file (`WAREHOUSE_PATH`) by an atomic rename. Real processes, real files."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pipeline.cli import export, focus
from pipeline.dashboard import report
from pipeline.dashboard.queries import Reader
from pipeline.defs.alert_checks import alerts_checks
from pipeline.defs.assets import source_asset
from pipeline.months import month_of
from pipeline.sandbox import SandboxServer
from pipeline.sources import BALANCE, INSIGHTS, INVOICES
from pipeline.warehouse.connection import WarehouseMissingError
from pipeline.warehouse.publish import working_file
from pipeline.warehouse.store import Warehouse

FIRST, SLOW = ("2024-01", "2024-01"), ("2024-02", "2024-07")
COUNT = "SELECT count(*), coalesce(sum(amount), 0) FROM invoice_items"


def python(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def in_thread(work) -> tuple[threading.Thread, list]:
    done: list = []
    thread = threading.Thread(target=lambda: done.append(work()))
    thread.start()
    return thread, done


HOLDER = """
    import duckdb, json, os, sys, time
    path, ready, go = sys.argv[1:4]
    con = duckdb.connect(path, read_only=True)
    query = "SELECT count(*), CAST(coalesce(sum(amount), 0) AS VARCHAR) FROM invoice_items"
    before = con.execute(query).fetchone()
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)
    after = con.execute(query).fetchone()
    print(json.dumps([before, after]))
"""

READER = """
    import duckdb, os, sys, time
    path, stop = sys.argv[1:3]
    opens = 0
    while not os.path.exists(stop):
        con = duckdb.connect(path, read_only=True)
        con.execute("SELECT count(*) FROM invoice_items").fetchone()
        con.close()
        opens += 1
        time.sleep(0.3)
    print(opens)
"""


def test_a_held_reader_keeps_its_data_a_new_one_sees_the_load_and_nobody_waits(
    tmp_path, warehouse_path, materialize
):
    with SandboxServer(latency=0.03) as server:
        assert materialize(server, warehouse_path, *FIRST).success
        old = duckdb.connect(str(warehouse_path), read_only=True).execute(COUNT).fetchone()
        ready, go, stop = tmp_path / "ready", tmp_path / "go", tmp_path / "stop"
        holder = python(HOLDER, warehouse_path, ready, go)
        reader = python(READER, warehouse_path, stop)
        wait_for_file(ready)
        started = time.monotonic()
        thread, done = in_thread(lambda: materialize(server, warehouse_path, *SLOW))
        thread.join(timeout=240)
        took = time.monotonic() - started
        go.touch()
        stop.touch()
        held, _ = holder.communicate(timeout=60)
        opens, errors = reader.communicate(timeout=60)
    assert done and done[0].success
    assert reader.returncode == 0, errors
    # The reader opened the file every 0.3 s all through the load, never refused.
    assert int(opens) >= max(2, int(took / 0.3) // 2)
    before, after = json.loads(held)
    assert before == after == [old[0], str(old[1])]
    new = duckdb.connect(str(warehouse_path), read_only=True).execute(COUNT).fetchone()
    assert new[0] > old[0]
    # The published file holds the months exactly as the working file does, and no raw.
    with duckdb.connect(str(working_file(warehouse_path)), read_only=True) as con:
        assert con.execute(COUNT).fetchone() == new
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        schemas = {s for (s,) in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
        assert "raw" not in schemas
        views = {v for (v,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert {"focus_costs", "monthly_spend_by_product"} <= views
        # A view over a table macro is published as its rows (DuckDB 1.4 reads it so).
        assert con.execute("SELECT count(*) FROM cost_anomalies").fetchone() == (0,)
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "cost_anomalies" in tables


def test_an_old_single_file_warehouse_becomes_the_working_file_and_is_published(
    old_warehouse, materialize, rows
):
    query = "SELECT invoice_uuid, invoice_period, amount FROM invoices ORDER BY ALL"
    before = rows(old_warehouse, query)
    assert before and not working_file(old_warehouse).exists()
    with SandboxServer() as server:
        month = server.data.invoices[0]["invoice_period"]
        assert materialize(server, old_warehouse, month).success
    after = rows(old_warehouse, query)
    # Every row of the months not loaded is still there, now published from the working file.
    assert [r for r in after if r[1] != month] == [r for r in before if r[1] != month]
    assert rows(working_file(old_warehouse), query) == after


PUBLISHER = """
    import sys
    from pathlib import Path
    from pipeline.warehouse.connection import WarehouseMissingError
    from pipeline.warehouse.store import Warehouse
    work, published = Warehouse(sys.argv[1]), Path(sys.argv[2])
    with work.transaction() as con:
        con.execute("CREATE OR REPLACE TABLE t AS SELECT 2 AS version, range AS n "
                    "FROM range(3000000)")
    print("ready", flush=True)
    while True:
        work.publish(published)
"""


def test_a_kill_during_publication_leaves_the_old_file_or_the_new_one(tmp_path):
    work, published = tmp_path / "w.working.duckdb", tmp_path / "w.duckdb"
    store = Warehouse(work)
    with store.transaction() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS version, range AS n FROM range(1000)")
    store.publish(published)
    seen = set()
    for delay in (0.05, 0.15, 0.3, 0.5, 0.8, 1.2):
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(PUBLISHER), str(work), str(published)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with duckdb.connect(str(published), read_only=True) as con:
            version, count = con.execute("SELECT max(version), count(*) FROM t").fetchone()
        assert (version, count) in {(1, 1000), (2, 3000000)}
        seen.add(version)
    assert 2 in seen  # some kill came after a publication finished
    store.publish(published)  # the next publication clears what a killed one left
    assert [p.name for p in tmp_path.iterdir() if ".publishing-" in p.name] == []


class SilentWebhook:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.clients: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)
            self.connected.set()

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.sock.close()


OPEN_READ_WRITE = "import duckdb, sys; duckdb.connect(sys.argv[1]).close(); print('opened')"


def test_the_alerts_step_holds_no_file_while_a_webhook_never_answers(
    warehouse_path, materialize, monkeypatch
):
    hook = SilentWebhook()
    monkeypatch.setenv("ALERT_URLS", f"json://127.0.0.1:{hook.port}/hook")
    monkeypatch.setenv("BUDGET_USD", "1")  # every team is past it: one alert to send
    with SandboxServer() as server:
        month = month_of(datetime.now(UTC))  # the open month: the one a budget judges
        assets = [source_asset(s) for s in (INVOICES, INSIGHTS, BALANCE)] + [alerts_checks]
        thread, done = in_thread(lambda: materialize(server, warehouse_path, month, assets=assets))
        assert hook.connected.wait(120), "the alert was never sent"
        # The step is waiting on the webhook: another process can take the working file.
        opener = python(OPEN_READ_WRITE, working_file(warehouse_path))
        out, err = opener.communicate(timeout=60)
        assert opener.returncode == 0 and out.strip() == "opened", err
        hook.close()
        thread.join(timeout=240)
    assert done and done[0].success
    budget = [c for c in done[0].get_asset_check_evaluations() if c.check_name == "budget"]
    assert budget[0].metadata["notifications_failed"].value == 1


def readers_of(monkeypatch: pytest.MonkeyPatch, published: Path) -> None:
    """The settings of a reader of `published` without a token: it is the sandbox's file."""
    monkeypatch.delenv("DIGITALOCEAN_TOKEN", raising=False)
    monkeypatch.delenv("DIGITALOCEAN_TOKENS", raising=False)
    monkeypatch.setenv("WAREHOUSE_PATH", str(published.with_name("real.duckdb")))
    monkeypatch.setenv("SANDBOX_WAREHOUSE_PATH", str(published))


def test_no_reader_creates_the_analysts_file(tmp_path, monkeypatch, capsys):
    """Only a publication makes WAREHOUSE_PATH: every reader finds it missing and says so in a
    line, leaving the folder as it was."""
    published = tmp_path / "warehouse.duckdb"
    monkeypatch.chdir(tmp_path)
    readers_of(monkeypatch, published)
    assert export.main([]) == 2
    assert focus.main([]) == 2
    assert report.main(["2024-05"]) == 2
    said = capsys.readouterr().err.splitlines()
    assert said == [
        f"export: no warehouse file at {published}: nothing has been published there yet "
        "(`make run` loads and publishes it)",
        f"make focus: no warehouse at {published}: load it first (make run)",
        f"report: no warehouse file at {published}",
    ]
    with pytest.raises(WarehouseMissingError, match="^no warehouse file at "):
        Warehouse(published).query("SELECT 1")
    assert list(tmp_path.iterdir()) == []


# The oldest DuckDB the published file promises to open (the 1.4 LTS line), in a venv of its own.
OLDEST_CLIENT = "duckdb==1.4.0"
OLD_CLIENT_HOME = Path(__file__).resolve().parents[1] / ".old-duckdb"
READ_EVERYTHING = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
names = [n for (n,) in con.execute(
    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
    "UNION ALL SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal"
).fetchall()]
counts = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in sorted(names)}
month = con.execute(
    "SELECT count(*), CAST(sum(amount) AS VARCHAR) FROM invoice_items WHERE invoice_period = ?",
    [sys.argv[2]],
).fetchone()
print(json.dumps({"version": duckdb.__version__, "counts": counts, "month": list(month)}))
"""


@pytest.fixture(scope="session")
def oldest_client() -> Path:
    """A Python with the oldest supported DuckDB, installed once by uv (the project's own, in
    .venv); skipped where PyPI cannot be reached, but never under CI."""
    python = OLD_CLIENT_HOME / "bin" / "python"
    marker = OLD_CLIENT_HOME / "installed.txt"
    if marker.is_file() and marker.read_text() == OLDEST_CLIENT and python.exists():
        return python
    uv = Path(sys.executable).with_name("uv")
    made = subprocess.run(
        f"'{uv}' venv -q --allow-existing '{OLD_CLIENT_HOME}' --python '{sys.executable}' && "
        f"'{uv}' pip install -q --python '{python}' '{OLDEST_CLIENT}'",
        shell=True,  # noqa: S602 (fixed paths)
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"could not install {OLDEST_CLIENT}: {made.stderr[-2000:]}")
        pytest.skip(f"could not install {OLDEST_CLIENT} (no PyPI?): {made.stderr[-300:]}")
    marker.write_text(OLDEST_CLIENT)
    return python


def test_the_published_file_opens_in_the_oldest_supported_duckdb(
    oldest_client, sandbox, warehouse_path, materialize
):
    """DuckDB 1.4 LTS reads every table and view of the analysts' file as 2.0 does, and a
    month's items to the cent: the file is written in a storage version it knows."""
    assert materialize(sandbox, warehouse_path, "2024-02", "2024-04").success
    read = subprocess.run(
        [oldest_client, "-c", READ_EVERYTHING, warehouse_path, "2024-03"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr[-2000:]
    old = json.loads(read.stdout)
    assert old["version"] == OLDEST_CLIENT.split("==")[1]
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        counts = {
            name: con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # noqa: S608
            for name in old["counts"]
        }
        month = con.execute(
            "SELECT count(*), CAST(sum(amount) AS VARCHAR) FROM invoice_items "
            "WHERE invoice_period = '2024-03'"
        ).fetchone()
    assert "cost_anomalies" in counts and "invoice_items" in counts
    assert old["counts"] == counts
    assert old["month"] == [month[0], month[1]] and month[0] > 0


def test_the_read_only_commands_work_from_a_read_only_folder(
    sandbox, tmp_path, materialize, lock, monkeypatch
):
    """Analysts may mount the published folder read-only: export, focus, report and the
    dashboard's queries read it and write only where they are told; a load into it is
    refused, named, before anything is written."""
    shared = tmp_path / "shared"
    shared.mkdir()
    published = shared / "warehouse.duckdb"
    assert materialize(sandbox, published, "2024-02", "2024-03").success
    before = sorted(p.name for p in shared.iterdir())
    lock(shared)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    readers_of(monkeypatch, published)
    assert export.main(["--out", str(work / "export")]) == 0
    assert focus.main(["--out", str(work / "focus")]) == 0
    assert report.main(["2024-03", "--out", str(work / "report.html")]) == 0
    found = Reader(published).read("teams", teams=[])
    assert found["team_name"].tolist() == ["Example Co"]
    items = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)", [f"{work}/export/invoice_items/*/*.parquet"]
    ).fetchone()
    with duckdb.connect(str(published), read_only=True) as con:
        assert items == con.execute("SELECT count(*) FROM invoice_items").fetchone()
    assert list((work / "focus").glob("*/cost_and_usage_*.parquet"))
    assert "2024-03" in (work / "report.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in shared.iterdir()) == before

    result = materialize(sandbox, published, "2024-04", raise_on_error=False)
    assert not result.success
    errors = [getattr(e.event_specific_data, "error", None) for e in result.all_events]
    said = "\n".join(error.message for error in errors if error is not None)
    assert f"the folder {str(shared)!r} is not writable by this user" in said
    assert sorted(p.name for p in shared.iterdir()) == before
