"""The Dagster instance in PostgreSQL: with DAGSTER_POSTGRES_URL set, the root dagster.yaml puts
runs, event log and schedules there through dagster-postgres; unset, the SQLite files stay.

Against a real throwaway server (`postgres_url` in conftest): a backfill of several months as one
`dagster asset materialize`, then two runs at once, each recorded in PostgreSQL.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest

from pipeline.cli.doctor.instance import check_dagster

REPO = Path(__file__).resolve().parents[1]
ASSETS = "raw_invoice_pages,invoices,invoice_items"


def materialize(home: Path, server, warehouse: Path, months: str, url: str | None):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DIGITALOCEAN", "DAGSTER"))},
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_PATH": str(warehouse),
        "DIGITALOCEAN_TOKEN": server.token,
        "DIGITALOCEAN_API_URL": server.url,
        "PYTHONPATH": str(REPO),
        **({"DAGSTER_POSTGRES_URL": url} if url else {}),
    }
    command = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize"]
    command += ["-m", "pipeline.defs.definitions", "--select", ASSETS, "--partition-range", months]
    return subprocess.Popen(
        command, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(proc) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def runs_in(url: str) -> list[tuple]:
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs ORDER BY create_timestamp")
        return cur.fetchall()


@pytest.fixture
def home(tmp_path) -> Path:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


def test_runs_are_recorded_in_postgres_when_the_url_is_set(home, sandbox, postgres_url):
    finished(materialize(home, sandbox, home / "a.duckdb", "2024-01...2024-04", postgres_url))
    assert runs_in(postgres_url) == [("SUCCESS",)]
    together = [
        materialize(home, sandbox, home / f"{n}.duckdb", "2024-05...2024-06", postgres_url)
        for n in ("b", "c")
    ]
    for proc in together:
        finished(proc)
    assert runs_in(postgres_url) == [("SUCCESS",)] * 3
    # Nothing of the instance went to the SQLite files.
    assert not (home / "data" / "dagster" / "history" / "runs.db").exists()
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM event_logs WHERE asset_key IS NOT NULL")
        assert cur.fetchone()[0] > 0


def test_unset_the_instance_stays_in_sqlite(home, sandbox):
    finished(materialize(home, sandbox, home / "a.duckdb", "2024-01...2024-01", None))
    assert (home / "data" / "dagster" / "history" / "runs.db").exists()


def test_the_password_never_shows_when_postgres_refuses(home, sandbox, postgres_url):
    parts = urlsplit(postgres_url)
    closed = postgres_url.replace(f":{parts.port}/", ":1/")
    proc = materialize(home, sandbox, home / "a.duckdb", "2024-01...2024-01", closed)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "secret-pw" not in out


def test_doctor_names_the_instance_storage_and_a_url_that_does_not_connect(home, postgres_url):
    """`make doctor` says the instance is in PostgreSQL; a URL that does not connect fails
    there, naming the server, never the password."""
    env = {"DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": postgres_url}
    found = check_dagster(env)
    assert found.ok is True
    assert (
        "the instance (runs, event log, schedules) is in PostgreSQL at 127.0.0.1:" in found.detail
    )
    # The test server trusts its own user, so a refusal is an unknown one (with a password).
    refused = postgres_url.replace("dagster:secret-pw", "nobody:wrong-pw-4471")
    for url in (refused, "postgresql://dagster:secret-pw@127.0.0.1:1/postgres"):
        found = check_dagster({**env, "DAGSTER_POSTGRES_URL": url})
        assert found.ok is False
        assert found.detail.startswith("DAGSTER_POSTGRES_URL does not connect to PostgreSQL at")
        assert "wrong-pw-4471" not in found.line() and "secret-pw" not in found.line()
    unset = check_dagster({"DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": ""})
    assert unset.ok is True and "runs stored in" in unset.detail
