"""The cost dashboard's numbers, through Streamlit's AppTest, against the same SQL an analyst runs.

After a real two-team load from the sandbox, each landing-page figure on the page equals the
named query's value run on the published file, and the sandbox's own invoices; the filters
narrow the tables; an empty or missing warehouse shows how to load it; an older warehouse
without the allocation views gets a note in that panel; and the page holds no connection open.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.alerts.rules import money
from pipeline.dashboard import report
from pipeline.dashboard.landing import share_text
from pipeline.dashboard.queries import ALLOCATION_VIEWS, QUERIES, Reader, params
from pipeline.defs.definitions import source_defs
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.settings import Settings, SettingsError, get_settings
from pipeline.sources import SOURCES

APP = Path(__file__).resolve().parents[1] / "pipeline" / "dashboard" / "app.py"
OPEN = month_of(datetime.now(UTC))
CLOSED = previous_month(OPEN)
FIRST = previous_month(previous_month(CLOSED))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, materialize) -> Iterator[tuple[SandboxServer, Path]]:
    """Two teams, every source, the open month and the three before it, published."""
    path = tmp_path_factory.mktemp("dashboard") / "warehouse.duckdb"
    with SandboxServer.with_teams(build_teams(2)) as server:
        assets = [a for s in SOURCES for a in source_defs(s)]
        assert materialize(server, path, FIRST, OPEN, assets=assets).success
        yield server, path


@pytest.fixture
def dashboard(monkeypatch) -> Iterator:
    """`dashboard(path, **env)`: the app run once by AppTest with WAREHOUSE_PATH=path."""

    def run(path: Path, **env: str) -> AppTest:
        monkeypatch.setenv("WAREHOUSE_PATH", str(path))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app = AppTest.from_file(str(APP), default_timeout=90).run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    yield run
    get_settings.cache_clear()


def sql(path: Path, name: str, **kw) -> list[dict]:
    """The named query, run as an analyst would: the same text, the file opened read-only."""
    text = QUERIES[name]
    bound = {k: v for k, v in kw.items() if f"${k}" in text}
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute(text, bound)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_each_landing_figure_equals_the_sql(loaded, dashboard):
    server, path = loaded
    teams = {server.data_for(t).team["uuid"]: server.data_for(t) for t in server.tokens}
    name_of = {uuid: data.team["name"] for uuid, data in teams.items()}
    first, other = sorted(teams)
    app = dashboard(path, BUDGETS=f"{name_of[first]}=1000", BUDGET_USD="250000")
    shown = metrics(app)
    closed = {r["team_uuid"]: r for r in sql(path, "last_closed_month", teams=list(teams))}
    to_date = {r["team_uuid"]: r for r in sql(path, "open_month_to_date", teams=list(teams))}
    forecast = {r["team_uuid"]: r for r in sql(path, "forecast", teams=list(teams))}
    assert set(closed) == set(to_date) == set(forecast) == set(teams)
    for uuid, data in teams.items():
        name = name_of[uuid]
        # The SQL's figures are the sandbox's bills: the closed invoice and the preview.
        invoice = next(i for i in data.invoices if i["invoice_period"] == CLOSED)
        assert closed[uuid]["invoice_period"] == CLOSED
        assert closed[uuid]["invoice_total"] == Decimal(invoice["amount"])
        assert to_date[uuid]["month_to_date"] == Decimal(data.preview["amount"])
        # …and the page shows exactly them.
        label = f"{name} · {CLOSED} invoice"
        assert shown[label] == money(closed[uuid]["invoice_total"])
        assert shown[f"{name} · {OPEN} to date"] == money(to_date[uuid]["month_to_date"])
        assert shown[f"{name} · forecast"] == money(forecast[uuid]["forecast"])
    # The budget as the budget check picks it: BUDGETS by name first, else BUDGET_USD.
    assert shown[f"{name_of[first]} · budget"] == "$1,000.00"
    assert shown[f"{name_of[other]} · budget"] == "$250,000.00"
    deltas = {m.label: m.delta for m in app.metric}
    over = forecast[first]["forecast"] - Decimal(1000)
    assert deltas[f"{name_of[first]} · forecast"] == (
        f"{money(abs(over))} {'over' if over > 0 else 'under'} budget"
    )


def test_the_team_and_month_filters_narrow_the_tables(loaded, dashboard):
    server, path = loaded
    uuid = server.data_for(server.tokens[1]).team["uuid"]
    app = dashboard(path)
    app.multiselect[0].set_value([uuid]).run()
    app.select_slider[0].set_value((CLOSED, OPEN)).run()
    assert not app.exception
    names = {label.split(" · ")[0] for label in metrics(app) if " · " in label}
    assert names == {server.data_for(server.tokens[1]).team["name"]}
    expected = sql(path, "reconciliation", **params([uuid], CLOSED, OPEN))
    tables = [d.value for d in app.dataframe]
    reconciliation = next(t for t in tables if "reconciliation" in t.columns)
    assert reconciliation.to_dict("records") == expected
    assert sorted(reconciliation.invoice_period) == [CLOSED, OPEN]
    payments = next(t for t in tables if "outstanding" in t.columns)
    assert payments.to_dict("records") == sql(path, "payments", **params([uuid], CLOSED, OPEN))


def test_the_tag_panel_shows_the_untagged_share_of_the_allocation_views(loaded, dashboard):
    """The untagged share of the first tag key, on the page, equals the SQL's."""
    server, path = loaded
    app = dashboard(path)
    teams = [server.data_for(t).team["uuid"] for t in server.tokens]
    tag_key = sql(path, "tag_keys", teams=teams)[0]["tag_key"]
    [row] = sql(path, "untagged_share", **params(teams, FIRST, OPEN, tag_key=tag_key))
    assert 0 < row["untagged"] < row["total"]
    assert metrics(app)[f"untagged share of spend for tag key “{tag_key}”"] == share_text(
        row["untagged"], row["total"]
    )
    assert "no allocation views yet" not in " ".join(i.value for i in app.info)


def test_a_warehouse_without_the_allocation_views_gets_a_note(loaded, dashboard, tmp_path):
    """A warehouse from before allocation: the tag panel says so, the rest still renders."""
    _, path = loaded
    older = tmp_path / "older.duckdb"
    shutil.copy(path, older)
    with duckdb.connect(str(older)) as con:
        for view in ALLOCATION_VIEWS:
            con.execute(f"DROP VIEW {view}")
    app = dashboard(older)
    assert not app.exception
    assert "no allocation views yet" in " ".join(i.value for i in app.info)


def test_the_page_holds_no_connection_to_the_file(loaded, dashboard):
    """After the page rendered, the file can be opened read-write in this very process: DuckDB
    refuses that while a read-only connection to it is open here."""
    _, path = loaded
    dashboard(path)
    duckdb.connect(str(path)).close()


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_an_empty_warehouse_shows_how_to_load_it(tmp_path, dashboard, kind):
    path = tmp_path / "warehouse.duckdb"
    if kind == "empty":
        duckdb.connect(str(path)).close()
    app = dashboard(path)
    text = " ".join(m.value for m in app.markdown)
    assert "No loaded data yet" in text and "make run" in text
    assert not app.metric and not app.error


def test_dashboard_port_is_a_validated_setting():
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert Settings.from_env({}, now=now).dashboard_port == 8501
    assert Settings.from_env({"DASHBOARD_PORT": "8600"}, now=now).dashboard_port == 8600
    with pytest.raises(SettingsError, match="DASHBOARD_PORT"):
        Settings.from_env({"DASHBOARD_PORT": "70000"}, now=now)


def test_the_report_is_one_self_contained_file_with_each_teams_invoice(
    loaded, monkeypatch, tmp_path
):
    server, path = loaded
    monkeypatch.setenv("WAREHOUSE_PATH", str(path))
    get_settings.cache_clear()
    out = tmp_path / "report.html"
    try:
        assert report.main([CLOSED, "--out", str(out)]) == 0
        assert report.main(["2024-13", "--out", str(out)]) == 2
    finally:
        get_settings.cache_clear()
    text = out.read_text()
    assert "<script" not in text and "http" not in text
    for token in server.tokens:
        data = server.data_for(token)
        invoice = next(i for i in data.invoices if i["invoice_period"] == CLOSED)
        assert f"<h2>{data.team['name']}</h2>" in text
        assert (
            f'Invoice total (final): <span class="figure">{money(Decimal(invoice["amount"]))}'
            in text
        )


@pytest.mark.parametrize("key", ['team"x', "a.b", "$[0]", "env"])
def test_a_tag_key_of_any_characters_narrows_the_resources(tmp_path, key):
    """Tag keys and values are bound parameters: quotes, dots and JSON-path syntax are text."""
    path = tmp_path / "warehouse.duckdb"
    tagged = json.dumps({key: "prod", "other": "x"})
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE cost_by_resource AS SELECT * FROM (VALUES "
            "('t', '2024-03', 'droplet', '1', 'web', 'p', ?, 12.50::DECIMAL(18,2)), "
            "('t', '2024-03', 'droplet', '2', 'db', 'p', '{}', 3.00::DECIMAL(18,2))) "
            "AS r(team_uuid, invoice_period, resource_kind, resource_id, resource_name, "
            "project_name, tags, amount)",
            [tagged],
        )
    found = Reader(path).read(
        "resources", **params(["t"], "2024-03", "2024-03", tag_key=key, tag_value="prod")
    )
    assert found["resource_id"].tolist() == ["1"]
    assert found["amount"].tolist() == [Decimal("12.50")]
