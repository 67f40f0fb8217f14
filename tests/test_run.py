"""`make run` as a new user sees it: a short readable log, and a run `make dev` can show."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb

from pipeline.defs.logs import console_logger, use_short_console
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.settings import Settings
from pipeline.sources import INVENTORY, SOURCES, SUMMARIES
from pipeline.warehouse.publish import working_file

REPO = Path(__file__).resolve().parents[1]
# Two lines a list of the inventory (eight lists since reserved IPs and snapshots), and one on
# what idle resources cost.
MAX_LINES = 45


def months_back(n: int) -> str:
    """The month `n` before the current one: a start period valid on any day."""
    month = month_of(datetime.now(UTC))
    for _ in range(n):
        month = previous_month(month)
    return month


INVENTORY_TABLES = [dg.AssetKey(t.name) for source in INVENTORY for t in source.tables]


@contextmanager
def instance_at(home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance a command with DAGSTER_HOME=home recorded into."""
    os.environ["DAGSTER_HOME"], before = str(home), os.environ.get("DAGSTER_HOME")
    cwd = Path.cwd()
    try:
        os.chdir(home)  # dagster.yaml's storage paths are relative to the working directory
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        os.chdir(cwd)
        if before is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = before


def inventory_materializations(instance: dg.DagsterInstance) -> dict[dg.AssetKey, list]:
    """Each inventory table's materializations as (run id, partition), newest first."""
    return {
        key: [(r.run_id, r.partition_key) for r in instance.fetch_materializations(key, 9).records]
        for key in INVENTORY_TABLES
    }


# Every variable the settings read: none of the machine's may leak into the run.
SETTINGS = Settings.variable_names()
NOT_INHERITED = SETTINGS | {"DAGSTER_HOME", "VERBOSE"}


def run_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """Only these settings (the rest of the environment, a shifted clock's included, as the
    test's own)."""
    return {
        **{k: v for k, v in os.environ.items() if k not in NOT_INHERITED},
        "HOME": str(tmp_path),
        "WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
        # Without a token, the sandbox's sample data goes to its own file, in tmp_path too.
        "SANDBOX_WAREHOUSE_PATH": str(tmp_path / "sandbox.duckdb"),
        # This checkout's package, whichever checkout the venv's editable install names.
        "PYTHONPATH": str(REPO),
        **env,
    }


def make_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.cli.run` as `make run` starts it (`make backfill` adds `--from`,
    `--to`), with only these settings."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.run", *args],
        cwd=tmp_path,
        env=run_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


def start(tmp_path: Path, command: list[str], **env: str) -> subprocess.Popen:
    """A command started as `make run` starts its own, not waited for."""
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=run_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_make_run_prints_a_short_log_and_records_the_run_for_the_ui(tmp_path):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    start = months_back(6)
    done = make_run(tmp_path, DAGSTER_HOME=str(tmp_path), INVOICE_START_PERIOD=start)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert len(lines) <= MAX_LINES, "\n".join(lines)
    assert not [line for line in lines if " - DEBUG - " in line or " - dagster - " in line]
    # The sandbox notice once per run, not once per step.
    assert sum("built-in SANDBOX API at" in line for line in lines) == 1
    assert lines[0].startswith(f"Loading {start}…") and "SANDBOX" in lines[0]
    assert any(line.split()[:3] == ["year", "months", "invoices"] for line in lines)
    assert lines[-1].startswith("Done in ") and str(tmp_path / "sandbox.duckdb") in lines[-1]
    assert "sample data (built-in sandbox)" in lines[0] and "sample data" in lines[-1]
    assert not (tmp_path / "warehouse.duckdb").exists()
    # The sample account trips no budget (none is set) and no anomaly check, and a normal load
    # is green: the summary names every failed or warning check, and there is none.
    assert lines[-2] == "Alerts: none (budget, cost spikes, new SKUs)"
    assert [line for line in lines if line.startswith("Check ")] == []

    with instance_at(tmp_path) as instance:
        runs = instance.get_runs()
        months = instance.get_materialized_partitions(dg.AssetKey("invoices"))
        snapshots = inventory_materializations(instance)
    assert len(runs) == 1 and runs[0].is_success
    assert start in months and len(months) >= 6
    # The inventory is one snapshot of now, not a month of each of the run's months.
    assert snapshots == {key: [(runs[0].run_id, None)] for key in INVENTORY_TABLES}


def test_a_failed_run_names_the_cause_in_a_few_lines_without_a_traceback(tmp_path):
    """A revoked token: the cause, which steps failed, and what to do; no Dagster wrapper."""
    with SandboxServer() as server:
        done = make_run(
            tmp_path,
            DIGITALOCEAN_TOKEN="revoked-token",
            DIGITALOCEAN_API_URL=server.url,
            INVOICE_START_PERIOD=months_back(2),
        )
    lines = done.stdout.splitlines()
    assert done.returncode == 1
    assert len(lines) <= 25, done.stdout
    assert "Traceback" not in done.stdout and "Error occurred while executing" not in done.stdout
    (failed,) = [line for line in lines if line.startswith("Failed: ")]
    assert failed.startswith(
        "Failed: balance, billing_history, daily_costs, database_clusters, droplets, "
        "invoice_tables, kubernetes_clusters, load_balancers, projects, reserved_ips, "
        "snapshots, volumes: "
    )
    assert "HTTP 401" in failed and "DIGITALOCEAN_TOKEN" in failed
    assert "revoked-token" not in done.stdout
    assert lines[-2] == "The failed steps' months keep their previous rows."
    assert lines[-1].startswith("Fix the cause and run again")


def squat_copy_name(published: Path, pid: int) -> Path:
    """A fault that stops writing the published copy even as root, as a full disk or a folder
    the loader may not write would: a non-empty directory where the run's copy goes."""
    blocker = published.with_name(f"{published.name}.publishing-{pid}")
    blocker.mkdir()
    (blocker / "kept").write_text("not the loader's")
    return blocker


def leftovers(folder: Path) -> list[str]:
    """The publication's temporary files (and their write-ahead logs) left in the folder: any
    file of theirs (the faults' folders are not files)."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and (".publishing-" in p.name or p.name == "warehouse.duckdb.wal")
    )


def test_a_failed_publication_fails_make_run_and_leaves_the_analysts_file_as_it_was(tmp_path):
    published = tmp_path / "warehouse.duckdb"
    with SandboxServer() as server:
        env = {
            "DIGITALOCEAN_TOKEN": server.token,
            "DIGITALOCEAN_API_URL": server.url,
            "INVOICE_START_PERIOD": months_back(2),
        }
        # The first publication fails: nothing may appear at WAREHOUSE_PATH.
        run = start(tmp_path, [sys.executable, "-m", "pipeline.cli.run"], **env)
        blocker = squat_copy_name(published, run.pid)
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 1, out
        assert not published.exists()
        assert leftovers(tmp_path) == []
        assert [p.name for p in blocker.iterdir()] == ["kept"]
        # Then a good run publishes, and a later run whose publication fails leaves that file.
        assert make_run(tmp_path, **env).returncode == 0
        before = published.read_bytes()
        run = start(tmp_path, [sys.executable, "-m", "pipeline.cli.run"], **env)
        blocker = squat_copy_name(published, run.pid)
        out, _ = run.communicate(timeout=300)
    lines = out.splitlines()
    assert run.returncode == 1, out
    assert published.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert "Traceback" not in out
    (failed,) = [line for line in lines if line.startswith("Failed: ")]
    reason = (
        f"PublishError: could not publish {published} (it keeps the previous publication): "
        f'IO Error: Could not read from file "{blocker}": Is a directory'
    )
    assert failed.endswith(f": {reason}")
    assert "invoice_tables" in failed.split(": ")[1].split(", ")
    # The cause is said once as it happens and once in the closing report; nothing claims the
    # months were published.
    assert sum(reason.removeprefix("PublishError: ") in line for line in lines) == 2
    assert not [line for line in lines if "and published" in line or "→ published" in line]
    assert not [line for line in lines if line.startswith("Done in ")]
    working = tmp_path / "warehouse.working.duckdb"
    assert lines[-2].startswith(f"Not published: {published} (published ")
    assert f") is older than the last write to {working} (" in lines[-2]
    assert lines[-2].endswith("then `make migrate` publishes what is loaded.")


def test_dagster_asset_materialize_fails_when_the_target_becomes_a_folder(tmp_path):
    """The first publication of a `dagster asset materialize` run meets a non-empty folder
    where the analysts' file goes: the command fails naming it, and nothing is left behind."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    published = tmp_path / "warehouse.duckdb"
    working = tmp_path / "warehouse.working.duckdb"
    month = months_back(1)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-m", "pipeline.defs.definitions"),
        *("--select", "raw_invoice_pages,invoices,invoice_items", "--partition", month),
    ]
    with SandboxServer(latency=0.3) as server:
        run = start(
            tmp_path,
            command,
            DIGITALOCEAN_TOKEN=server.token,
            DIGITALOCEAN_API_URL=server.url,
            INVOICE_START_PERIOD=months_back(2),
            DAGSTER_HOME=str(tmp_path),
        )
        deadline = time.monotonic() + 120
        while not working.exists():  # the run has started: its settings were accepted
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()[0]
            time.sleep(0.005)
        published.mkdir()
        (published / "kept").write_text("not the loader's")
        out, _ = run.communicate(timeout=300)
    assert run.returncode != 0, out
    assert f"could not publish {published} (nothing is published there yet): Is a directory" in out
    assert [p.name for p in published.iterdir()] == ["kept"]
    assert leftovers(tmp_path) == []


def backfill_mistakes() -> list[tuple[list[str], str]]:
    """`make backfill` arguments a person gets wrong, and what the one line must say."""
    first, last = months_back(3), months_back(0)
    valid = f"months run from {first} to {last}"
    return [
        (["--from", "2024-13"], f"FROM='2024-13' is not a month in YYYY-MM form; {valid}"),
        (["--from", "2024-1"], f"FROM='2024-1' is not a month in YYYY-MM form; {valid}"),
        (["--from", months_back(5)], f"FROM={months_back(5)} is outside the partitions: {valid}"),
        (["--from", first, "--to", "2999-01"], f"TO=2999-01 is outside the partitions: {valid}"),
        (["--from", last, "--to", first], f"FROM={last} is after TO={first}: give FROM first"),
    ]


def test_backfill_mistakes_are_answered_in_a_line_before_anything_is_made(tmp_path):
    """Each mistake: exit 2, at most five lines showing the valid range, no traceback, and
    nothing created (no warehouse, no instance folder)."""
    for args, says in backfill_mistakes():
        done = make_run(tmp_path, *args, INVOICE_START_PERIOD=months_back(3))
        lines = done.stdout.splitlines()
        assert done.returncode == 2, done.stdout
        assert len(lines) <= 5 and "Traceback" not in done.stdout
        assert lines[0].startswith(f"error: {says}"), done.stdout
        assert list(tmp_path.iterdir()) == []


def test_a_backfill_loads_its_months_in_make_runs_short_lines(tmp_path):
    """`make backfill FROM TO` is `make run` on those months: the same lines and summary, no
    Python warnings, and exactly those months in the warehouse."""
    first, last = months_back(3), months_back(2)
    done = make_run(tmp_path, "--from", first, "--to", last, INVOICE_START_PERIOD=months_back(6))
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        f"Loading {first}…{last} (2 months) from the built-in SANDBOX API: sample data"
    ), lines[0]
    assert not [line for line in lines if "Warning" in line or "warn(" in line], done.stdout
    assert not [line for line in lines if line.startswith("Open month")], done.stdout
    assert lines[-1].startswith("Done in ") and len(lines) <= MAX_LINES
    with duckdb.connect(str(tmp_path / "sandbox.duckdb"), read_only=True) as con:
        months = con.execute("SELECT DISTINCT invoice_period FROM invoices ORDER BY 1").fetchall()
    assert months == [(first,), (last,)]


def test_make_replay_rebuilds_from_raw_in_the_same_short_lines(tmp_path):
    """`make replay SOURCE FROM TO` after a load: the months checked like a backfill's, a line
    per team, and the closing line; zero requests."""
    month = months_back(2)
    assert make_run(tmp_path, "--from", month, INVOICE_START_PERIOD=months_back(3)).returncode == 0
    replay = [sys.executable, "-m", "pipeline.cli.replay", "invoices"]
    env = run_env(tmp_path, INVOICE_START_PERIOD=months_back(3))
    done = subprocess.run(
        [*replay, month], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Replaying invoices {month}…{month} (1 month) from raw"
    assert (
        f"  invoices           Example Co: replayed {month}…{month}: 1 rows in invoices"
        in (lines[1])
    )
    assert lines[-1].startswith("Done in ") and "no request was made" in lines[-1]
    wrong = subprocess.run(
        [*replay, "2024-13"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines() == [
        f"error: FROM='2024-13' is not a month in YYYY-MM form; months run from "
        f"{months_back(3)} to {months_back(0)} (INVOICE_START_PERIOD through the open month)"
    ]


def test_a_refused_or_unreachable_api_is_said_once_and_fails_fast(tmp_path):
    """A 401, and an API that does not answer: the first step asks once (the second after its
    retries), says it once, every step fails at once from that answer, and the end points to
    `make doctor`."""

    def timed_run(url: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        done = make_run(
            tmp_path,
            DIGITALOCEAN_TOKEN="dop_v1_" + "0" * 64,
            DIGITALOCEAN_API_URL=url,
            INVOICE_START_PERIOD=months_back(1),
        )
        return done, time.monotonic() - started

    with SandboxServer() as server:
        refused, took_refused = timed_run(server.url)
        asked = [r["path"] for r in server.requests]
    # The sandbox is gone: nothing listens on its port now.
    unreachable, took_unreachable = timed_run(server.url)
    assert asked == ["/v2/account"]
    for done, says, took in (
        (refused, "HTTP 401", took_refused),
        (unreachable, "ConnectionError", took_unreachable),
    ):
        lines = done.stdout.splitlines()
        assert done.returncode == 1, done.stdout
        assert took < 40, f"{took:.0f}s"
        assert len([line for line in lines if " error: " in line]) == 1, done.stdout
        # Said by the step that asked and by the summary; the retries before say they retry.
        said = [line for line in lines if says in line and "; retry " not in line]
        assert len(said) == 2, done.stdout
        assert "make doctor" in lines[-1]
        assert len(lines) <= 15, done.stdout


def test_dagster_asset_materialize_of_every_asset_over_a_range_reads_the_inventory_once(
    tmp_path,
):
    """The CLI's backfill of everything over months is one run: each month has its invoices,
    and each inventory table one materialization, of no month."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    first, last = months_back(2), months_back(1)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-m", "pipeline.defs.definitions"),
        *("--select", "*", "--partition-range", f"{first}...{last}"),
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env=run_env(tmp_path, DAGSTER_HOME=str(tmp_path), INVOICE_START_PERIOD=months_back(3)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    with instance_at(tmp_path) as instance:
        (run,) = instance.get_runs()
        months = instance.get_materialized_partitions(dg.AssetKey("invoices"))
        snapshots = inventory_materializations(instance)
    assert run.is_success and months == {first, last}
    assert snapshots == {key: [(run.run_id, None)] for key in INVENTORY_TABLES}


def test_dagster_asset_materialize_with_a_revoked_token_names_its_team_in_few_lines(
    tmp_path, run_against, rows
):
    """`dagster asset materialize` of every asset for fifty teams, one token revoked after its
    team was read: each failed step says that team in one line, not a stack trace per step, and
    every other team's open month is exact."""
    teams, revoked = 50, 26
    month = months_back(0)
    with SandboxServer.with_teams(build_teams(teams, "recent")) as server:
        token = server.tokens[revoked - 1]
        server.inject(r"^/v2/(?!account$)", "401", times=10_000, token=token)
        broken = server.data_for(token).team
        expected = {}
        for other in server.tokens:
            data = server.data_for(other)
            items = data.items[data.preview["invoice_uuid"]]
            expected[data.team["uuid"]] = (len(items), sum(Decimal(i["amount"]) for i in items))
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("dagster")),
                *("asset", "materialize", "-m", "pipeline.defs.definitions"),
                *("--select", "*", "--partition", month),
            ],
            cwd=tmp_path,
            env=run_against(tmp_path, server),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
            check=False,
        )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout[-3000:]
    assert len(lines) <= 150, done.stdout
    assert "Traceback" not in done.stdout and "STEP_FAILURE" not in done.stdout
    said = [line for line in lines if " error: " in line]
    # Each step that reads the API names the team, once; nothing else is an error. The
    # summaries read the invoices the team's list named: its list failed, so none is asked for.
    steps = [source for source in SOURCES if source is not SUMMARIES]
    assert len(said) == len(steps) and all(broken["uuid"] in line for line in said), said
    found = rows(
        working_file(tmp_path / "warehouse.duckdb"),
        "SELECT team_uuid, count(*), sum(amount) FROM invoice_items WHERE invoice_period = ? "
        "GROUP BY 1",
        [month],
    )
    del expected[broken["uuid"]]
    assert {team: (count, total) for team, count, total in found} == expected


def test_a_run_that_names_no_logger_gets_the_short_console_and_verbose_the_full(monkeypatch):
    """The hook Dagster looks its default loggers up by exists in the pinned Dagster (an upgrade
    that drops it fails here, not silently in long output), and `VERBOSE=1` gives the full log."""
    from dagster._core.execution import context_creation_job

    monkeypatch.setattr(
        context_creation_job, "default_system_loggers", context_creation_job.default_system_loggers
    )  # put back after the test
    use_short_console()
    monkeypatch.delenv("VERBOSE", raising=False)
    assert context_creation_job.default_system_loggers(None) == [
        (console_logger, {"log_level": "INFO", "full": False, "step_failures": True})
    ]
    monkeypatch.setenv("VERBOSE", "1")
    assert context_creation_job.default_system_loggers(None) == [
        (console_logger, {"log_level": "DEBUG", "full": True, "step_failures": True})
    ]
