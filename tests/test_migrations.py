"""Schema migrations: an old warehouse file is upgraded in place without losing a row.

The old file is tests/fixtures/warehouse_made_before_migrations.duckdb, made by the code before
migrations existed (its README says how); every test works on a copy.
"""

import re
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import time_machine

from pipeline.engine.stages import SNAPSHOTS
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import build_teams
from pipeline.sandbox.teams import team_of
from pipeline.sources import INSIGHTS, INVENTORY, INVOICES
from pipeline.warehouse.migrate import (
    CREATE_TABLE,
    LATEST_VERSION,
    MIGRATIONS,
    RECORD,
    VIEWS,
    MigrationError,
    load_migrations,
    main,
    migrate,
    schema_version,
)
from pipeline.warehouse.sample_data import holds_sample_data
from pipeline.warehouse.store import Warehouse

ROOT = Path(__file__).parents[1]
VIEW_FILES = [
    ROOT / "pipeline" / "warehouse" / name
    for name in ("views.sql", "allocation.sql", "focus.sql", "focus_1_3.sql", "focus_1_4.sql")
]
NORMALIZED = ["invoices", "invoice_items", "invoice_summaries"]
OLD_RAW = ["invoice_list_pages", "invoices", "invoice_item_pages", "invoice_summaries"]
FETCH_COLUMNS = (
    "fetch_id, run_id, fetched_at, first_period, last_period, api_host, status, error, requests"
)


def difference(con: duckdb.DuckDBPyConnection, left: str, right: str) -> tuple[list, list]:
    """Rows of `left` missing from `right`, and rows of `right` missing from `left` (bags)."""
    missing = con.execute(f"({left}) EXCEPT ALL ({right})").fetchall()  # noqa: S608
    extra = con.execute(f"({right}) EXCEPT ALL ({left})").fetchall()  # noqa: S608
    return missing, extra


def count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]  # noqa: S608


def tables(con: duckdb.DuckDBPyConnection, database: str | None = None) -> set[str]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
        "WHERE database_name = coalesce(?, current_database())",
        [database],
    ).fetchall()
    return {name for (name,) in rows}


def columns(con: duckdb.DuckDBPyConnection, table: str, database: str | None = None) -> list:
    schema, name = table.split(".")
    return con.execute(
        "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
        "WHERE database_name = coalesce(?, current_database()) AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index",
        [database, schema, name],
    ).fetchall()


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[list, list]]:
    """Every table's columns and rows (sorted), every view's and macro's definition."""
    state: dict[str, tuple[list, list]] = {}
    for table in sorted(tables(con)):
        rows = con.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
        state[table] = (columns(con, table), sorted(rows, key=repr))
    state["views"] = (
        [],
        con.execute(
            "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        ).fetchall(),
    )
    state["macros"] = (
        [],
        con.execute(
            "SELECT function_name, parameters, macro_definition "
            "FROM duckdb_functions() WHERE schema_name = 'raw' "
            "ORDER BY 1"
        ).fetchall(),
    )
    return state


@pytest.fixture
def upgraded(old_warehouse: Path, tmp_path: Path):
    """The old file migrated, with an untouched copy of it attached read-only as `old`."""
    before = tmp_path / "before.duckdb"
    shutil.copyfile(old_warehouse, before)
    with duckdb.connect(str(old_warehouse)) as con:
        assert schema_version(con) == 0
        applied = migrate(con)
        con.execute(f"ATTACH '{before}' AS old (READ_ONLY)")
        yield con, applied


def test_the_fixture_is_a_warehouse_from_before_migrations(old_warehouse):
    with duckdb.connect(str(old_warehouse), read_only=True) as con:
        assert schema_version(con) == 0
        assert {f"raw.{t}" for t in OLD_RAW} <= tables(con)
        assert "raw.pages" not in tables(con)
        # What makes the upgrade worth testing: two fetches of 2024-03, an invoice with more
        # than one item page, summaries from three runs, a preview month.
        assert con.execute(
            "SELECT count(*) FROM raw.fetches WHERE '2024-03' BETWEEN first_period AND last_period"
        ).fetchone() == (2,)
        assert con.execute("SELECT max(page) FROM raw.invoice_item_pages").fetchone() == (2,)
        assert con.execute(
            "SELECT count(DISTINCT fetched_at), count(*) FROM raw.invoice_summaries"
        ).fetchone() == (3, 4)
        assert con.execute("SELECT DISTINCT status FROM invoices ORDER BY 1").fetchall() == [
            ("final",),
            ("preview",),
        ]


def test_upgrade_goes_from_version_0_to_latest(upgraded):
    con, applied = upgraded
    assert applied == list(range(1, LATEST_VERSION + 1))
    assert schema_version(con) == LATEST_VERSION == 10
    assert con.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall() == [
        (1, "initial"),
        (2, "one_raw_landing"),
        (3, "daily_costs_history_balance"),
        (4, "teams"),
        (5, "alerts"),
        (6, "inventory"),
        (7, "inventory_intervals"),
        (8, "raw_exact_bytes"),
        (9, "sample_data"),
        (10, "idle_resources"),
    ]
    assert {t for t in tables(con) if t.startswith("raw.")} == {
        "raw.fetches",
        "raw.pages",
        "raw.targets",
    }


@pytest.mark.parametrize("table", NORMALIZED)
def test_upgrade_keeps_normalized_tables_row_for_row(upgraded, table):
    con, _ = upgraded
    # Every old column, unchanged, then team_uuid (migration 4): NULL until a run names the team.
    assert columns(con, f"main.{table}") == [
        *columns(con, f"main.{table}", "old"),
        ("team_uuid", "VARCHAR", True),
    ]
    old_rows = f"SELECT * FROM old.main.{table}"  # noqa: S608
    new_rows = f"SELECT * EXCLUDE (team_uuid) FROM main.{table}"  # noqa: S608
    assert count(con, old_rows) > 0
    assert difference(con, old_rows, new_rows) == ([], [])
    assert sorted(con.execute(new_rows).fetchall(), key=repr) == sorted(
        con.execute(old_rows).fetchall(), key=repr
    )
    assert count(con, f"SELECT * FROM main.{table} WHERE team_uuid IS NOT NULL") == 0  # noqa: S608


def test_upgrade_keeps_every_fetch_and_adds_one_per_summary_batch(upgraded):
    con, _ = upgraded
    assert [c[0] for c in columns(con, "raw.fetches")][-2:] == ["source", "team_uuid"]
    assert difference(
        con,
        f"SELECT {FETCH_COLUMNS}, 'invoices' FROM old.raw.fetches",  # noqa: S608
        f"SELECT {FETCH_COLUMNS}, source FROM raw.fetches WHERE source = 'invoices'",  # noqa: S608
    ) == ([], [])
    batches = con.execute(
        "SELECT fetched_at, min(invoice_period), max(invoice_period), count(*) "
        "FROM old.raw.invoice_summaries GROUP BY fetched_at ORDER BY fetched_at"
    ).fetchall()
    synthetic = con.execute(
        "SELECT fetch_id, fetch_id = 'summaries-' || md5(CAST(fetched_at AS VARCHAR)), run_id, "
        "fetched_at, first_period, last_period, api_host, status, error, requests "
        "FROM raw.fetches WHERE source = 'invoice_summaries' ORDER BY fetched_at"
    ).fetchall()
    assert [row[3:] for row in synthetic] == [
        (at, first, last, "unknown (before migration 2)", "ok", None, n)
        for at, first, last, n in batches
    ]
    assert all(re.fullmatch(r"summaries-[0-9a-f]{32}", row[0]) and row[1] for row in synthetic)
    assert {row[2] for row in synthetic} == {None}
    assert count(con, "SELECT * FROM raw.fetches") == count(
        con, "SELECT * FROM old.raw.fetches"
    ) + len(batches)


def test_upgrade_moves_every_page_body_into_raw_pages(upgraded):
    con, _ = upgraded
    old_pages = """
        SELECT fetch_id, 'invoice_list', NULL, NULL, page, body FROM old.raw.invoice_list_pages
        UNION ALL
        SELECT fetch_id, 'invoice_items', invoice_uuid, invoice_period, page, body
        FROM old.raw.invoice_item_pages
    """
    new_pages = """
        SELECT fetch_id, endpoint, request_key, partition_key, page, body FROM raw.pages
        WHERE endpoint IN ('invoice_list', 'invoice_items')
    """
    assert difference(con, old_pages, new_pages) == ([], [])
    old_summaries = """
        SELECT fetched_at, invoice_uuid, invoice_period, 1, body FROM old.raw.invoice_summaries
    """
    new_summaries = """
        SELECT f.fetched_at, p.request_key, p.partition_key, p.page, p.body
        FROM raw.pages AS p JOIN raw.fetches AS f USING (fetch_id)
        WHERE p.endpoint = 'invoice_summary' AND f.source = 'invoice_summaries'
    """
    assert difference(con, old_summaries, new_summaries) == ([], [])
    # Nothing else came in: the three kinds of page are all there is.
    assert count(con, "SELECT * FROM raw.pages") == count(con, old_pages) + count(
        con, old_summaries
    )


def test_upgrade_moves_raw_invoices_and_summaries_into_raw_targets(upgraded):
    con, _ = upgraded
    assert difference(
        con,
        "SELECT fetch_id, invoice_uuid, invoice_period, status, entry FROM old.raw.invoices",
        "SELECT t.fetch_id, t.target_key, t.partition_key, t.status, t.entry "
        "FROM raw.targets AS t JOIN raw.fetches AS f USING (fetch_id) "
        "WHERE f.source = 'invoices'",
    ) == ([], [])
    assert difference(
        con,
        "SELECT fetched_at, invoice_uuid, invoice_period, status, NULL "
        "FROM old.raw.invoice_summaries",
        "SELECT f.fetched_at, t.target_key, t.partition_key, t.status, t.entry "
        "FROM raw.targets AS t JOIN raw.fetches AS f USING (fetch_id) "
        "WHERE f.source = 'invoice_summaries'",
    ) == ([], [])
    assert count(con, "SELECT * FROM raw.targets") == count(
        con, "SELECT * FROM old.raw.invoices"
    ) + count(con, "SELECT * FROM old.raw.invoice_summaries")


def test_dropped_columns_are_recoverable_from_what_was_kept(upgraded):
    con, _ = upgraded
    # raw.invoices.items_total is meta.total of the invoice's item page 1 in that fetch.
    pairs = con.execute("""
        SELECT i.items_total, CAST(json_extract(p.body, '$.meta.total') AS INTEGER)
        FROM old.raw.invoices AS i
        JOIN raw.pages AS p
          ON p.fetch_id = i.fetch_id AND p.request_key = i.invoice_uuid
         AND p.endpoint = 'invoice_items' AND p.page = 1
    """).fetchall()
    assert len(pairs) == count(con, "SELECT * FROM old.raw.invoices")
    assert all(total is not None and total == meta for total, meta in pairs)
    # raw.invoice_item_pages.status is the status of the page's invoice in raw.targets.
    assert difference(
        con,
        "SELECT fetch_id, invoice_uuid, page, status FROM old.raw.invoice_item_pages",
        "SELECT p.fetch_id, p.request_key, p.page, t.status FROM raw.pages AS p "
        "JOIN raw.targets AS t ON t.fetch_id = p.fetch_id AND t.target_key = p.request_key "
        "WHERE p.endpoint = 'invoice_items'",
    ) == ([], [])


def test_latest_fetch_gives_the_newest_ok_fetch_of_a_source(upgraded):
    con, _ = upgraded
    fetches = con.execute(
        "SELECT fetch_id, fetched_at, first_period, last_period FROM old.raw.fetches "
        "WHERE status = 'ok'"
    ).fetchall()
    march = [(at, fid) for fid, at, first, last in fetches if first <= "2024-03" <= last]
    assert len(march) == 2
    newest = max(march)[1]
    assert con.execute("SELECT * FROM raw.latest_fetch('invoices', ['2024-03'])").fetchall() == [
        ("2024-03", newest)
    ]
    latest = dict(
        con.execute(
            "SELECT * FROM raw.latest_fetch('invoices', ['2024-03', '2024-04', '2024-05'])"
        ).fetchall()
    )
    assert latest["2024-03"] == newest
    assert "2024-05" not in latest  # no fetch covers it
    assert latest["2024-04"] != newest  # the second fetch was of 2024-03 only
    (summary_march,) = con.execute(
        "SELECT fetch_id FROM raw.latest_fetch('invoice_summaries', ['2024-03'])"
    ).fetchone()
    # The summaries of the run that fetched 2024-03 last.
    assert (
        con.execute(
            "SELECT fetched_at FROM raw.fetches WHERE fetch_id = ?", [summary_march]
        ).fetchone()
        == con.execute(
            "SELECT max(fetched_at) FROM old.raw.invoice_summaries WHERE invoice_period = '2024-03'"
        ).fetchone()
    )
    assert summary_march.startswith("summaries-")


def test_second_migrate_applies_nothing_and_changes_nothing(upgraded):
    con, _ = upgraded
    con.execute("DETACH old")
    before = snapshot(con)
    assert migrate(con) == []
    assert schema_version(con) == LATEST_VERSION
    assert snapshot(con) == before


def test_fresh_file_migrates_to_latest_with_every_view_queryable(warehouse_path):
    with duckdb.connect(str(warehouse_path)) as con:
        assert schema_version(con) == 0
        assert migrate(con) == list(range(1, LATEST_VERSION + 1))
        assert schema_version(con) == LATEST_VERSION
        assert migrate(con) == []
        assert {t for t in tables(con) if t.startswith("raw.")} == {
            "raw.fetches",
            "raw.pages",
            "raw.targets",
        }
        assert [c[0] for c in columns(con, "raw.pages")] == [
            "fetch_id",
            "endpoint",
            "request_key",
            "partition_key",
            "page",
            "body",
            "received",
        ]
        assert [c[0] for c in columns(con, "raw.targets")] == [
            "fetch_id",
            "target_key",
            "partition_key",
            "status",
            "entry",
        ]
        views = {
            view
            for sql in VIEW_FILES
            for view in re.findall(r"CREATE OR REPLACE VIEW (\w+)", sql.read_text())
        }
        assert len(views) == 30
        stored = {
            v
            for (v,) in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        assert stored == views
        for view in sorted(views):
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)  # noqa: S608
        assert (
            con.execute("SELECT * FROM raw.latest_fetch('invoices', ['2024-03'])").fetchall() == []
        )


def test_new_fetches_default_to_invoices_and_need_a_primary_key(warehouse_path):
    with duckdb.connect(str(warehouse_path)) as con:
        migrate(con)
        insert = (
            "INSERT INTO raw.fetches (fetch_id, fetched_at, first_period, last_period, api_host, "
            "status) VALUES ('f1', now(), '2024-03', '2024-03', 'h', 'ok')"
        )
        con.execute(insert)
        assert con.execute("SELECT source FROM raw.fetches").fetchall() == [("invoices",)]
        with pytest.raises(duckdb.ConstraintException, match="f1"):
            con.execute(insert)


APPLIED_ALL = "applied " + ", ".join(m.label for m in load_migrations())
BROKEN_FILE = f"{LATEST_VERSION + 1:04d}_broken.sql"


def broken_folder(tmp_path: Path, sql: str) -> Path:
    """The real migrations plus one more that fails part-way."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for migration in load_migrations():
        (folder / migration.filename).write_text(migration.sql)
    (folder / BROKEN_FILE).write_text(sql)
    return folder


BROKEN = """
    CREATE TABLE half_done (x INTEGER);
    ALTER TABLE invoices ADD COLUMN half_done INTEGER;
    INSERT INTO raw.fetches (fetch_id, source, fetched_at, first_period, last_period, api_host,
                             status) VALUES ('half', 'x', now(), '2024-01', '2024-01', 'h', 'ok');
    SELECT * FROM no_such_table;
"""


def test_a_failing_migration_rolls_back_and_names_its_file(upgraded, tmp_path):
    con, _ = upgraded
    con.execute("DETACH old")
    before = snapshot(con)
    with pytest.raises(MigrationError) as failure:
        migrate(con, broken_folder(tmp_path, BROKEN))
    message = str(failure.value)
    assert f"migration {BROKEN_FILE}" in message
    assert "rolled back" in message
    assert "no_such_table" in message
    assert schema_version(con) == LATEST_VERSION
    assert snapshot(con) == before
    assert "main.half_done" not in tables(con)


def test_a_failing_migration_keeps_the_ones_before_it(old_warehouse, tmp_path):
    """On the old file the real migrations commit; the broken one after them alone is undone."""
    with duckdb.connect(str(old_warehouse)) as con:
        with pytest.raises(MigrationError, match=f"migration {re.escape(BROKEN_FILE)}"):
            migrate(con, broken_folder(tmp_path, BROKEN))
        assert schema_version(con) == LATEST_VERSION
        assert "raw.pages" in tables(con)
        assert "half_done" not in [c[0] for c in columns(con, "main.invoices")]
        assert (
            con.execute("SELECT count(*) FROM raw.fetches WHERE fetch_id = 'half'").fetchone()[0]
            == 0
        )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["0001_a.sql", "0001_b.sql"], "migration version 1 is used twice: 0001_a.sql and 0001_b"),
        (
            ["0001_a.sql", "0003_c.sql"],
            r"without gaps; found 0001_a.sql, 0003_c.sql \(missing \[2\]",
        ),
        (["0002_b.sql"], r"without gaps; found 0002_b.sql \(missing \[1\]"),
        (["0001_a.sql", "2_b.sql"], "'2_b.sql' is not named NNNN_name.sql"),
        (["0001_a.sql", "0002_Bad-Name.sql"], "'0002_Bad-Name.sql' is not named NNNN_name.sql"),
    ],
)
def test_migration_files_must_be_numbered_once_and_without_gaps(tmp_path, files, message):
    for name in files:
        (tmp_path / name).write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("not a migration")
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


def test_a_file_newer_than_the_code_is_refused(warehouse_path):
    with duckdb.connect(str(warehouse_path)) as con:
        migrate(con)
        future = LATEST_VERSION + 1
        con.execute("INSERT INTO schema_migrations VALUES (?, 'from_the_future', now())", [future])
        with pytest.raises(
            MigrationError,
            match=f"schema version {future}, newer than this code's {LATEST_VERSION}",
        ):
            migrate(con)
        assert schema_version(con) == future


def test_migrations_ship_with_the_package():
    assert [(m.version, m.name) for m in load_migrations()] == [
        (1, "initial"),
        (2, "one_raw_landing"),
        (3, "daily_costs_history_balance"),
        (4, "teams"),
        (5, "alerts"),
        (6, "inventory"),
        (7, "inventory_intervals"),
        (8, "raw_exact_bytes"),
        (9, "sample_data"),
        (10, "idle_resources"),
    ]
    assert MIGRATIONS.joinpath("0002_one_raw_landing.sql").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["pipeline"]
    assert "warehouse/migrations/*.sql" in package_data


def test_command_line_upgrades_then_reports_up_to_date(old_warehouse, capsys):
    assert main([str(old_warehouse)]) == 0
    assert capsys.readouterr().out == (
        f"warehouse {old_warehouse}: schema version 0 → {LATEST_VERSION} ({APPLIED_ALL})\n"
    )
    assert main([str(old_warehouse)]) == 0
    assert (
        capsys.readouterr().out
        == f"warehouse {old_warehouse} is at version {LATEST_VERSION}, up to date\n"
    )


@pytest.mark.parametrize("token", [True, False], ids=["token", "sandbox"])
def test_command_line_reads_the_settings_warehouse_and_runs_as_a_module(tmp_path, token):
    """With a token, WAREHOUSE_PATH; without one, the sandbox's own SANDBOX_WAREHOUSE_PATH."""
    path = tmp_path / "new" / "warehouse.duckdb"
    other = tmp_path / "other" / "warehouse.duckdb"
    real, sample = (path, other) if token else (other, path)
    settings = {"WAREHOUSE_PATH": str(real), "SANDBOX_WAREHOUSE_PATH": str(sample)}
    if token:
        settings["DIGITALOCEAN_TOKEN"] = "dop_v1_" + "0" * 64
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.warehouse.migrate"],
        cwd=ROOT,
        env={**settings, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    working = path.with_name("warehouse.working.duckdb")  # the loader's file, then published
    said = result.stdout.splitlines()
    assert said[0] == f"warehouse {working}: schema version 0 → {LATEST_VERSION} ({APPLIED_ALL})"
    assert said[1].startswith(f"published {path} in ") and len(said) == 2
    for file in (working, path):
        with duckdb.connect(str(file), read_only=True) as con:
            assert schema_version(con) == LATEST_VERSION
    assert not other.parent.exists()


def test_command_line_reports_a_locked_file(old_warehouse, capsys):
    with duckdb.connect(str(old_warehouse)):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys; c=duckdb.connect({str(old_warehouse)!r}); "
            "print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "ready\n"
        assert main([str(old_warehouse)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"warehouse {old_warehouse}: ")
        assert "lock" in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with duckdb.connect(str(old_warehouse), read_only=True) as con:
        assert schema_version(con) == 0


# -- Migration 7: the inventory's snapshot rows become validity intervals --------------------
FIXTURES = Path(__file__).parent / "fixtures"
# The allocation views and focus_costs as they were at schema version 6 (read snapshot rows).
V6_VIEWS = [FIXTURES / "allocation_v6.sql", FIXTURES / "focus_v6.sql"]
INVENTORY_TABLES = {
    "droplets": "droplets",
    "volumes": "volumes",
    "kubernetes_clusters": "kubernetes_clusters",
    "kubernetes_node_pools": "kubernetes_clusters",
    "database_clusters": "database_clusters",
    "load_balancers": "load_balancers",
    "projects": "projects",
    "project_resources": "projects",
}
# Every view that reads the inventory, and each one's columns at version 6.
ALLOCATION_VIEWS = (
    "inventory_validity",
    "allocation_snapshots",
    "item_allocation",
    "cost_by_resource",
    "cost_by_tag",
    "allocation_coverage",
    "monthly_spend_by_project",
    "sku_owners",
    "focus_costs",
)
V6_NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
V6_MONTHS = ["2026-09", "2026-10", "2026-11", "2026-12"]


def at_version_6(path: Path) -> None:
    """A new file at schema version 6, with the views of that version; raw.pages also has the
    column this code lands (migration 8, which adds it only where it is missing)."""
    migrations = load_migrations()
    with duckdb.connect(str(path)) as con:
        con.execute(CREATE_TABLE)
        for migration in migrations[:6]:
            con.execute(migration.sql)
            con.execute(RECORD, [migration.version, migration.name])
        (exact_bytes,) = [m for m in migrations if m.name == "raw_exact_bytes"]
        con.execute(exact_bytes.sql)
        con.execute(VIEWS.read_text(encoding="utf-8"))
        for views in V6_VIEWS:
            con.execute(views.read_text(encoding="utf-8"))


def view_rows(con: duckdb.DuckDBPyConnection, view: str, names: list[str]) -> list[tuple]:
    listed = ", ".join(names)
    return sorted(con.execute(f"SELECT {listed} FROM {view}").fetchall(), key=repr)  # noqa: S608


# The inventory lists version 6 had, and the columns migration 10 added to two of them.
AFTER_V6_LISTS = ("reserved_ips", "snapshots")
V6_INVENTORY = [s for s in INVENTORY if s.name not in AFTER_V6_LISTS]
AFTER_V6 = ["droplet_ids", "target_tag"]


@pytest.fixture(scope="module")
def inventory_history(tmp_path_factory, make_client, load_team):
    """Two teams' invoices and insights of four months, and their inventory read on four days
    (the volumes re-tagged, then tagged back; a droplet gone; an empty list of load balancers; the
    projects read twice only): the same rows written at version 6 as snapshot rows (`old`),
    and by this code as intervals (`new`)."""
    folder = tmp_path_factory.mktemp("inventory_history")
    old, new = folder / "v6.duckdb", folder / "new.duckdb"
    at_version_6(old)
    # A run asks every source's tables for rows loaded before teams: lists version 6 did not
    # have stand in empty while these loads run, and go before the file is compared.
    with duckdb.connect(str(old)) as con:
        for name in AFTER_V6_LISTS:
            con.execute(f"CREATE TABLE {name} (team_uuid VARCHAR)")
    Warehouse(new).migrate()
    stores = Warehouse(old), Warehouse(new)
    days = [datetime(2026, 9, 20, 8, tzinfo=UTC), datetime(2026, 10, 15, 8, tzinfo=UTC)]
    days += [datetime(2026, 11, 20, 8, tzinfo=UTC), V6_NOW]
    with SandboxServer.with_teams(build_teams(2, now=V6_NOW)) as server:
        for position, token in enumerate(server.tokens, start=1):
            data = server.data_for(token)
            team = data.team["uuid"]
            lists = data.inventory.lists
            tags = {id(v): list(v["tags"]) for v in lists["volumes"]}
            balancers, gone = list(lists["load_balancers"]), lists["droplets"][-1]
            with make_client(server, token=token) as api:
                for store in stores:
                    store.teams.see_one(team, data.team["name"], position)
                    with time_machine.travel(V6_NOW, tick=True):
                        for source in (INVOICES, INSIGHTS):
                            load_team(source, api, store, V6_MONTHS, position)
                for n, day in enumerate(days):
                    for volume in lists["volumes"]:
                        volume["tags"] = ["env:retagged"] if n == 1 else tags[id(volume)]
                    lists["load_balancers"] = [] if n == 2 else balancers
                    if n == 2:
                        lists["droplets"].remove(gone)
                    for source in V6_INVENTORY:
                        if source.name == "projects" and n in (1, 2):
                            continue
                        with time_machine.travel(day, tick=True):
                            loaded = load_team(source, api, stores[1], V6_MONTHS, position)
                        result = loaded.result
                        assert result is not None
                        with stores[0].transaction() as con:
                            for name, frame in result.tables.items():
                                if name == SNAPSHOTS:
                                    frame = frame.drop(columns="loaded_at")
                                # What migration 10 added, version 6 did not have.
                                if name in ("volumes", "load_balancers"):
                                    frame = frame.drop(columns=AFTER_V6, errors="ignore")
                                con.register("incoming", frame)
                                con.execute(
                                    f"INSERT INTO {name} BY NAME SELECT * FROM incoming"  # noqa: S608
                                )
                                con.unregister("incoming")
    with duckdb.connect(str(old)) as con:
        for name in AFTER_V6_LISTS:
            con.execute(f"DROP TABLE {name}")
    return old, new


def test_migration_7_keeps_every_allocation_view_value_for_value(inventory_history, tmp_path):
    """Version 6's views over its snapshot rows, then migration 7 and this version's views over
    the intervals it made (and over the intervals the loads wrote): the same rows, every value."""
    old, new = inventory_history
    migrated = tmp_path / "migrated.duckdb"
    shutil.copyfile(old, migrated)
    with duckdb.connect(str(migrated)) as con:
        assert schema_version(con) == 6
        names = {
            view: [d[0] for d in con.execute(f"SELECT * FROM {view} LIMIT 0").description]  # noqa: S608
            for view in ALLOCATION_VIEWS
        }
        before = {view: view_rows(con, view, names[view]) for view in ALLOCATION_VIEWS}
        assert migrate(con) == [7, 8, 9, 10]
        after = {view: view_rows(con, view, names[view]) for view in ALLOCATION_VIEWS}
    with duckdb.connect(str(new), read_only=True) as con:
        loaded = {view: view_rows(con, view, names[view]) for view in ALLOCATION_VIEWS}
    for view in ALLOCATION_VIEWS:
        assert after[view] == before[view], view
        assert loaded[view] == before[view], view
    # What makes the comparison worth it: October is allocated with the snapshot of the
    # re-tag, September and November with the volumes' own tags either side of it.
    retagged = {
        (team, month, amount)
        for team, month, key, value, amount, *_ in before["cost_by_tag"]
        if key == "env" and value == "retagged"
    }
    assert {month for _, month, _ in retagged} == {"2026-10"}
    assert all(amount > 0 for *_, amount in retagged)
    assert all(before[view] for view in ALLOCATION_VIEWS)


def test_migration_7_turns_snapshot_rows_into_intervals_without_losing_one(
    inventory_history, tmp_path
):
    """Each snapshot's rows, read back from the intervals at its snapshot_at, are version 6's
    rows of it, column for column (but loaded_at); and the tables hold far fewer rows."""
    old, _ = inventory_history
    migrated = tmp_path / "migrated.duckdb"
    shutil.copyfile(old, migrated)
    with duckdb.connect(str(migrated)) as con:
        migrate(con)
        con.execute(f"ATTACH '{old}' AS v6 (READ_ONLY)")
        for table, source in INVENTORY_TABLES.items():
            kept = [
                c
                for c, _, _ in columns(con, f"main.{table}", "v6")
                if c
                not in ("team_uuid", "snapshot_id", "snapshot_at", "snapshot_month", "loaded_at")
            ]
            listed = ", ".join(f"t.{c}" for c in kept)
            old_rows = (
                f"SELECT team_uuid, snapshot_id, snapshot_at, {listed} "  # noqa: S608
                f"FROM v6.main.{table} AS t"
            )
            read_back = (
                f"SELECT t.team_uuid, s.snapshot_id, s.snapshot_at, {listed} "  # noqa: S608
                f"FROM main.{table} AS t JOIN inventory_snapshots AS s "
                f"ON s.team_uuid = t.team_uuid AND s.source = '{source}' "
                "AND t.valid_from <= s.snapshot_at "
                "AND (t.valid_to IS NULL OR s.snapshot_at < t.valid_to)"
            )
            assert count(con, old_rows) > 0, table
            assert difference(con, old_rows, read_back) == ([], []), table
            stored = f"SELECT * FROM main.{table}"  # noqa: S608
            assert count(con, stored) < count(con, old_rows), table
        assert difference(
            con, "SELECT * FROM v6.inventory_snapshots", "SELECT * FROM inventory_snapshots"
        ) == ([], [])


@pytest.mark.parametrize(("seed", "marked"), [(7, True), (8, None)], ids=["sandbox", "other"])
def test_migration_9_marks_a_file_holding_the_sandbox_team_as_sample_data(tmp_path, seed, marked):
    """A file loaded before the mark existed: the built-in sandbox's one team makes it sample
    data (a token run then refuses it); other teams leave it for its next run to mark."""
    migrations = load_migrations()
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute(CREATE_TABLE)
        for migration in migrations[:8]:
            con.execute(migration.sql)
            con.execute(RECORD, [migration.version, migration.name])
        team = team_of(seed)
        con.execute(
            "INSERT INTO teams VALUES (?, ?, 1, now(), now())", [team["uuid"], team["name"]]
        )
        assert migrate(con) == [9, 10]
        assert holds_sample_data(con) is marked
