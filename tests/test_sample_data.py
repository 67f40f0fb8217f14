"""Sample data lives apart: a sandbox `make run` and a token run keep files of their own, every
place showing the sandbox's data says "sample data", a run that would mix the two refuses naming
the file, and a failing token is named by its place in the settings, never as a sample team."""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.dashboard import report
from pipeline.defs.definitions import source_defs
from pipeline.defs.resources import DigitalOceanResource, WarehouseResource
from pipeline.defs.sandbox import SandboxResource
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import build_dataset
from pipeline.sandbox.teams import team_of
from pipeline.settings import SAMPLE_DATA, Settings
from pipeline.sources import INVOICES
from pipeline.warehouse.publish import working_file

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "pipeline" / "dashboard" / "app.py"
OPEN = month_of(datetime.now(UTC))
START = previous_month(OPEN)
# A team of its own, read with a token of the real shape: what a user's own bill looks like.
REAL = team_of(8)
TOKEN = "dop_v1_" + "5a" * 32
SAMPLE = team_of(7)  # the built-in sandbox's one team, "Example Co"
SETTINGS = Settings.variable_names()
ONE_MONTH = {
    "dagster/asset_partition_range_start": START,
    "dagster/asset_partition_range_end": START,
}


def run(folder: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m pipeline.cli.run` as `make run` starts it, with only these settings: both
    warehouse files in `folder` unless `env` says otherwise."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli.run"],
        cwd=folder,
        env={
            **{k: v for k, v in os.environ.items() if k not in SETTINGS | {"DAGSTER_HOME"}},
            "HOME": str(folder),
            "PYTHONPATH": str(REPO),
            "WAREHOUSE_PATH": str(folder / "warehouse.duckdb"),
            "SANDBOX_WAREHOUSE_PATH": str(folder / "sandbox.duckdb"),
            "INVOICE_START_PERIOD": START,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )


def teams(path: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT team_uuid, team_name FROM teams ORDER BY 1").fetchall()


@pytest.fixture(scope="module")
def real_api() -> Iterator[SandboxServer]:
    """A loopback server answering TOKEN with a team that is not the built-in sandbox's."""
    with SandboxServer(build_dataset(seed=8), token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, real_api) -> tuple[Path, subprocess.CompletedProcess, ...]:
    """A sandbox run, then a token run, in one folder, as a new user's first hour goes."""
    folder = tmp_path_factory.mktemp("first-hour")
    sandbox = run(folder)
    assert sandbox.returncode == 0, sandbox.stdout
    real = run(folder, DIGITALOCEAN_TOKEN=TOKEN, DIGITALOCEAN_API_URL=real_api.url)
    assert real.returncode == 0, real.stdout
    return folder, sandbox, real


def test_sample_and_real_teams_live_in_files_of_their_own(loaded):
    folder, _, _ = loaded
    assert teams(folder / "sandbox.duckdb") == [(SAMPLE["uuid"], "Example Co")]
    assert teams(folder / "warehouse.duckdb") == [(REAL["uuid"], REAL["name"])]
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT team_uuid FROM invoices").fetchall() == [
            (REAL["uuid"],)
        ]
        assert con.execute("SELECT sample_data FROM sample_data").fetchall() == [(False,)]
    with duckdb.connect(str(folder / "sandbox.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sample_data FROM sample_data").fetchall() == [(True,)]
    assert working_file(folder / "sandbox.duckdb").name == "sandbox.working.duckdb"
    assert working_file(folder / "sandbox.duckdb").is_file()


def test_the_sandbox_run_says_sample_data_and_the_token_run_does_not(loaded):
    folder, sandbox, real = loaded
    lines = sandbox.stdout.splitlines()
    assert lines[0] == (
        f"Loading {START}…{OPEN} (2 months) from the built-in SANDBOX API: {SAMPLE_DATA}, "
        f"not your bill, into {folder / 'sandbox.duckdb'}"
    )
    assert lines[-1].startswith("Done in ") and lines[-1].split("→ published ")[1].startswith(
        f"{folder / 'sandbox.duckdb'} ({SAMPLE_DATA}; set DIGITALOCEAN_TOKEN to load your bill)"
    )
    assert "sample data" not in real.stdout.lower()
    assert (
        real.stdout.splitlines()[-1]
        .split("→ published ")[1]
        .startswith(f"{folder / 'warehouse.duckdb'}; ")
    )


@pytest.fixture
def settings_env(monkeypatch) -> Iterator[pytest.MonkeyPatch]:
    """None of the settings' variables set."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def dashboard_text(app: AppTest) -> str:
    assert not app.exception, [e.value for e in app.exception]
    return "\n".join(w.value for w in app.warning)


def test_the_dashboard_shows_a_sample_data_banner_for_the_sandbox_only(
    loaded, settings_env, real_api
):
    folder, _, _ = loaded
    settings_env.setenv("WAREHOUSE_PATH", str(folder / "warehouse.duckdb"))
    settings_env.setenv("SANDBOX_WAREHOUSE_PATH", str(folder / "sandbox.duckdb"))
    sample = AppTest.from_file(str(APP), default_timeout=90).run()
    assert "Sample data (built-in sandbox)" in dashboard_text(sample)
    assert "Example Co" in [option for box in sample.multiselect for option in box.options]

    settings_env.setenv("DIGITALOCEAN_TOKEN", TOKEN)
    settings_env.setenv("DIGITALOCEAN_API_URL", real_api.url)
    real = AppTest.from_file(str(APP), default_timeout=90).run()
    assert "Sample data" not in dashboard_text(real)
    assert [option for box in real.multiselect for option in box.options] == [REAL["name"]]


def test_the_report_says_sample_data_for_the_sandbox_only(loaded, settings_env, tmp_path):
    folder, _, _ = loaded
    settings_env.setenv("WAREHOUSE_PATH", str(folder / "warehouse.duckdb"))
    settings_env.setenv("SANDBOX_WAREHOUSE_PATH", str(folder / "sandbox.duckdb"))
    assert report.main([START, "--out", str(tmp_path / "sample.html")]) == 0
    sample = (tmp_path / "sample.html").read_text(encoding="utf-8")
    assert f"<h1>DigitalOcean costs, {START} (sample data)</h1>" in sample
    assert "<strong>Sample data (built-in sandbox)</strong>" in sample
    assert "Example Co" in sample

    settings_env.setenv("DIGITALOCEAN_TOKEN", TOKEN)
    assert report.main([START, "--out", str(tmp_path / "real.html")]) == 0
    real = (tmp_path / "real.html").read_text(encoding="utf-8")
    assert "sample data" not in real.lower() and "Example Co" not in real
    assert f"<h1>DigitalOcean costs, {START}</h1>" in real


def copy_warehouse(published: Path, folder: Path) -> Path:
    """The published file and the loader's working file, copied into `folder`."""
    for file in (published, working_file(published)):
        shutil.copy(file, folder / file.name)
    return folder / published.name


def test_a_failing_token_is_named_by_its_place_never_as_a_sample_team(loaded, tmp_path):
    folder, _, _ = loaded
    copy = copy_warehouse(folder / "warehouse.duckdb", tmp_path)
    with SandboxServer(build_dataset(seed=8), token=TOKEN) as server:
        server.revoke(TOKEN)
        done = run(tmp_path, DIGITALOCEAN_TOKEN=TOKEN, DIGITALOCEAN_API_URL=server.url)
    assert done.returncode == 1, done.stdout
    (failed,) = [line for line in done.stdout.splitlines() if line.startswith("Failed: ")]
    assert (
        f"DIGITALOCEAN_TOKEN (last seen reading team {REAL['name']!r} ({REAL['uuid']})): " in failed
    )
    assert "HTTP 401" in failed
    assert "Example Co" not in done.stdout and "sample data" not in done.stdout.lower()
    assert TOKEN not in done.stdout
    assert teams(copy) == [(REAL["uuid"], REAL["name"])]


@pytest.mark.parametrize("token", [True, False], ids=["token-into-sample", "sandbox-into-real"])
def test_a_run_that_would_mix_refuses_naming_the_file_and_writes_nothing(
    loaded, tmp_path, real_api, token
):
    folder, _, _ = loaded
    if token:  # WAREHOUSE_PATH pointed at the sandbox's file
        target = copy_warehouse(folder / "sandbox.duckdb", tmp_path)
        env = {
            "DIGITALOCEAN_TOKEN": TOKEN,
            "DIGITALOCEAN_API_URL": real_api.url,
            "WAREHOUSE_PATH": str(target),
            "SANDBOX_WAREHOUSE_PATH": str(tmp_path / "other-sandbox.duckdb"),
        }
        says = (
            f"error: WAREHOUSE_PATH {str(target)!r} holds the built-in sandbox's sample data, "
            "and a token is set: a run with a token never writes beside sample teams. Set "
            "WAREHOUSE_PATH to another file (or move this one away), then run again. Nothing "
            "was written."
        )
    else:  # SANDBOX_WAREHOUSE_PATH pointed at the real file
        target = copy_warehouse(folder / "warehouse.duckdb", tmp_path)
        env = {"SANDBOX_WAREHOUSE_PATH": str(target), "WAREHOUSE_PATH": str(tmp_path / "w.duckdb")}
        says = (
            f"error: SANDBOX_WAREHOUSE_PATH {str(target)!r} holds teams read with a token, and "
            "no token is set: the built-in sandbox never writes sample data beside them. Set "
            "SANDBOX_WAREHOUSE_PATH to another file, or set the token, then run again. Nothing "
            "was written."
        )
    files = (target, working_file(target))
    before = [file.read_bytes() for file in files]
    done = run(tmp_path, **env)
    assert (done.returncode, done.stdout.splitlines()) == (1, [says])
    assert [file.read_bytes() for file in files] == before


def test_the_warehouse_resource_refuses_a_file_of_the_other_kind(loaded, tmp_path, real_api):
    """The guard of every Dagster run (the UI, `make backfill`, the CLI), not only `make run`'s."""
    folder, _, _ = loaded
    target = copy_warehouse(folder / "sandbox.duckdb", tmp_path)
    before = target.read_bytes(), working_file(target).read_bytes()
    result = dg.materialize(
        source_defs(INVOICES),
        resources={
            "digitalocean": DigitalOceanResource(token=TOKEN, api_url=real_api.url),
            "warehouse": WarehouseResource(path=str(target), sample_data=False),
        },
        tags=ONE_MONTH,
        raise_on_error=False,
    )
    assert not result.success
    errors = [getattr(e.event_specific_data, "error", None) for e in result.all_events]
    said = "\n".join(error.message for error in errors if error is not None)
    assert f"WAREHOUSE_PATH {str(target)!r} holds the built-in sandbox's sample data" in said
    assert (target.read_bytes(), working_file(target).read_bytes()) == before


def test_sandbox_materializations_say_sample_data_in_their_metadata(tmp_path, real_api):
    """The UI's asset pages: a `data` entry on every materialization of the sandbox's, none on
    a token's."""
    sample = dg.materialize(
        source_defs(INVOICES),
        resources={
            "digitalocean": SandboxResource(),
            "warehouse": WarehouseResource(path=str(tmp_path / "s.duckdb"), sample_data=True),
        },
        tags=ONE_MONTH,
    )
    real = dg.materialize(
        source_defs(INVOICES),
        resources={
            "digitalocean": DigitalOceanResource(token=TOKEN, api_url=real_api.url),
            "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"), sample_data=False),
        },
        tags=ONE_MONTH,
    )
    shown = [
        e.materialization.metadata.get("data") for e in sample.get_asset_materialization_events()
    ]
    assert len(shown) == 3 and {m.value for m in shown if m is not None} == {SAMPLE_DATA}
    assert None not in shown
    assert [
        e.materialization.metadata.get("data") for e in real.get_asset_materialization_events()
    ] == [None] * 3
