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
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.alerts.rules import money
from pipeline.dashboard import display, report
from pipeline.dashboard.landing import forecast_basis, share_text
from pipeline.dashboard.queries import ALLOCATION_VIEWS, QUERIES, Reader, params
from pipeline.defs.definitions import source_defs
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.settings import Settings, SettingsError
from pipeline.sources import SOURCES

APP = Path(__file__).resolve().parents[1] / "pipeline" / "dashboard" / "app.py"
OPEN = month_of(datetime.now(UTC))
CLOSED = previous_month(OPEN)
FIRST = previous_month(previous_month(CLOSED))
# The files here are loaded with tokens (of the sandbox's teams): read as a token's warehouse.
TOKEN = "dop_v1_" + "0" * 64


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
    """`dashboard(path, **env)`: the app run once by AppTest with WAREHOUSE_PATH=path and a
    token (so the settings name that file); `env` may set the sandbox's instead."""

    def run(path: Path, **env: str) -> AppTest:
        monkeypatch.setenv("WAREHOUSE_PATH", str(path))
        monkeypatch.setenv("DIGITALOCEAN_TOKEN", TOKEN)
        monkeypatch.delenv("DIGITALOCEAN_TOKENS", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = AppTest.from_file(str(APP), default_timeout=90).run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    yield run


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


def charts(app: AppTest) -> list[tuple[dict, pd.DataFrame]]:
    """Each chart on the page: its Vega-Lite spec and the rows it draws (sent beside the spec)."""
    found = []
    for element in app.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        [dataset] = [d for d in element.proto.datasets if d.name == spec["data"]["name"]]
        found.append((spec, pa.ipc.open_stream(dataset.data.data).read_pandas()))
    return found


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
        invoice = data.invoice_for(CLOSED)
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
    reconciliation = next(t for t in tables if "Reconciliation" in t.columns)
    assert sorted(reconciliation["Month"]) == [CLOSED, OPEN]
    assert list(reconciliation["Invoice (USD)"]) == [
        f"{r['invoice_amount']:,.2f}" for r in expected
    ]
    assert list(reconciliation["Reconciliation"]) == [r["reconciliation"] for r in expected]
    payments = next(t for t in tables if "Outstanding (USD)" in t.columns)
    paid = sql(path, "payments", **params([uuid], CLOSED, OPEN))
    assert list(payments["Outstanding (USD)"]) == [f"{r['outstanding']:,.2f}" for r in paid]


def test_the_tag_panel_shows_the_untagged_share_of_the_allocation_views(loaded, dashboard):
    """The untagged share of the default tag key, on the page, equals the SQL's."""
    server, path = loaded
    app = dashboard(path)
    teams = [server.data_for(t).team["uuid"] for t in server.tokens]
    tag_key = sql(path, "tag_keys", **params(teams, FIRST, OPEN))[0]["tag_key"]
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
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", TOKEN)
    out = tmp_path / "report.html"
    assert report.main([CLOSED, "--out", str(out)]) == 0
    assert report.main(["2024-13", "--out", str(out)]) == 2
    text = out.read_text()
    assert "<script" not in text and "http" not in text
    # The page's column names and money, e.g. 1,234.56.
    assert "<th>Month</th>" in text and "<th>Amount (USD)</th>" in text
    assert "invoice_period" not in text
    for token in server.tokens:
        data = server.data_for(token)
        invoice = data.invoice_for(CLOSED)
        assert f"<h2>{data.team['name']}</h2>" in text
        assert (
            f'Invoice total (final): <span class="figure">{money(Decimal(invoice["amount"]))}'
            in text
        )
        uuid = data.team["uuid"]
        for row in sql(path, "monthly_by_product", **params([uuid], CLOSED, CLOSED)):
            assert f"<td>{row['amount']:,.2f}</td>" in text


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


def test_every_series_of_a_chart_has_its_own_colour_and_a_whole_legend_entry(loaded, dashboard):
    """13 products, 12 SKUs, 6 regions, a tag's values: no two series of a chart share a colour,
    a product keeps its colour across the teams' charts, and no legend label is cut."""
    server, path = loaded
    teams = [server.data_for(t).team["uuid"] for t in server.tokens]
    app = dashboard(path)
    drawn = charts(app)
    # Monthly by product, daily by SKU and by region, and by tag: one chart of each per team.
    assert len(drawn) == 4 * len(teams)
    colour_of: dict[str, str] = {}
    for spec, rows in drawn:
        color = spec["encoding"]["color"]
        series = set(rows[color["field"]])
        scale = color["scale"]
        assert len(series) > 1
        assert set(scale["domain"]) == series
        assert len(set(scale["range"])) == len(scale["range"]) >= len(series)
        assert color["legend"]["labelLimit"] == 0 and color["legend"]["orient"] == "bottom"
        if color["field"] == "product" and spec["encoding"]["x"]["field"] == "invoice_period":
            for name, colour in zip(scale["domain"], scale["range"], strict=True):
                assert colour_of.setdefault(name, colour) == colour
    # Every product any team billed has a colour of its own, across both teams' charts.
    with duckdb.connect(str(path), read_only=True) as con:
        [(products,)] = con.execute(
            "SELECT count(DISTINCT ServiceName) FROM focus_costs WHERE x_InvoicePeriod"
            " BETWEEN ? AND ?",
            [FIRST, OPEN],
        ).fetchall()
    assert products > 10  # more than a ten-colour scheme holds
    assert len(colour_of) == products == len(set(colour_of.values()))


def test_past_twenty_series_the_smallest_share_one_other_entry():
    """25 series: the 19 largest keep their own colour, the 6 smallest are one "Other" entry,
    and the amounts still add up to the same total, exactly."""
    frame = pd.DataFrame(
        {
            "product": [f"p{i:02d}" for i in range(25)] + ["p00"],
            "amount": [Decimal(100 - i) + Decimal("0.01") for i in range(25)] + [Decimal("-1")],
            "team_name": ["t"] * 26,
        },
        dtype=object,
    )
    grouped, order = display.grouped(frame, "product")
    assert order == [f"p{i:02d}" for i in range(19)] + ["Other (6 smaller)"]
    assert sum(grouped.amount) == sum(frame.amount)
    other = grouped[grouped["product"] == "Other (6 smaller)"]
    assert sum(other.amount) == sum(Decimal(100 - i) + Decimal("0.01") for i in range(19, 25))
    domain, colours = display.colour_scale(order, set(grouped["product"]))
    assert domain == order and len(set(colours)) == 20
    assert display.colour_scale(order, ["p03", "p01"]) == (["p01", "p03"], colours[1:4:2])


def test_the_default_tag_key_is_the_one_covering_the_most_spend(loaded, dashboard):
    server, path = loaded
    teams = [server.data_for(t).team["uuid"] for t in server.tokens]
    with duckdb.connect(str(path), read_only=True) as con:
        by_spend = con.execute(
            "SELECT tag_key, sum(amount) AS tagged FROM cost_by_tag"
            " WHERE tag_value IS NOT NULL AND team_uuid IN (SELECT unnest(?))"
            " AND invoice_period BETWEEN ? AND ? GROUP BY tag_key ORDER BY tagged DESC",
            [teams, FIRST, OPEN],
        ).fetchall()
    (top, most), (_, second) = by_spend[:2]
    assert most > second and top != min(key for key, _ in by_spend)  # not merely the first name
    listed = sql(path, "tag_keys", **params(teams, FIRST, OPEN))
    assert [(r["tag_key"], r["tagged_amount"]) for r in listed][: len(by_spend)] == by_spend
    app = dashboard(path)
    [tag_key] = [box for box in app.selectbox if box.label == "Tag key"]
    assert tag_key.value == top
    assert f"untagged share of spend for tag key “{top}”" in metrics(app)


def test_every_table_has_human_headers_and_amounts_with_two_decimals(loaded, dashboard):
    server, path = loaded
    teams = [server.data_for(t).team["uuid"] for t in server.tokens]
    app = dashboard(path)
    tables = [d.value for d in app.dataframe]
    assert len(tables) >= 5
    for frame in tables:
        assert all("_" not in c and c[0].isupper() for c in frame.columns), list(frame.columns)
    movers = next(t for t in tables if "Change (%)" in t.columns)
    assert list(movers.columns) == [
        "Team",
        "Month",
        "Product",
        "Month before (USD)",
        "Amount (USD)",
        "Change (USD)",
        "Change (%)",
    ]
    expected = sql(path, "top_movers", **params(teams, FIRST, OPEN))
    assert list(movers["Change (USD)"]) == [f"{r['change']:,.2f}" for r in expected]
    assert list(movers["Month"]) == [r["invoice_period"] for r in expected]
    resources = next(t for t in tables if "Resource" in t.columns)
    assert list(resources.columns) == [
        "Month",
        "Resource kind",
        "Resource ID",
        "Resource",
        "Project",
        "Tags",
        "Amount (USD)",
    ]
    rows = sql(path, "resources", **params(teams, FIRST, OPEN))
    assert list(resources["Amount (USD)"]) == [f"{r['amount']:,.2f}" for r in rows]
    # An amount past a thousand shows its separator: exactly as the invoice says it.
    invoices = next(t for t in tables if "Invoice (USD)" in t.columns)
    rec = sql(path, "reconciliation", **params(teams, FIRST, OPEN))
    big = next(r["invoice_amount"] for r in rec if r["invoice_amount"] >= 1000)
    assert f"{big:,.2f}" in list(invoices["Invoice (USD)"])
    assert display.money_text(Decimal("1234.5")) == "1,234.50"
    assert display.money_text(Decimal("-1090.555")) == "-1,090.56"


def test_the_forecast_says_how_many_days_it_rests_on(loaded, dashboard):
    """The caption under each team's forecast names the days of the open month it is from; the
    sandbox's open month holds the days before today's, so whether it is rough is checked
    against the SQL's own count (`make test-any-day` runs it on other days)."""
    server, path = loaded
    app = dashboard(path)
    teams = {
        server.data_for(t).team["uuid"]: server.data_for(t).team["name"] for t in server.tokens
    }
    captions = [c.value for c in app.caption]
    for row in sql(path, "forecast", teams=list(teams)):
        days = row["days_loaded"]
        [caption] = [c for c in captions if c.startswith(f"{teams[row['team_uuid']]} · forecast")]
        unit = "day" if days == 1 else "days"
        assert f"forecast from {days} {unit} of data (of {row['days_in_month']})" in caption
        assert ("rough" in caption) == (days < 7)


@pytest.mark.parametrize(
    ("days", "in_month", "says", "rough"),
    [
        (3, 31, "forecast from 3 days of data (of 31): rough", True),
        (1, 30, "forecast from 1 day of data (of 30): rough", True),
        (6, 28, "rough, 22 days left on a 6-day rate", True),
        (
            7,
            30,
            "forecast from 7 days of data (of 30): 23 days left on the last 7 days' rate",
            False,
        ),
        (30, 30, "the whole month is loaded", False),
        (0, 31, "rough, no daily costs loaded yet, so it is the month to date only", True),
    ],
)
def test_the_forecast_basis_is_rough_under_seven_days(days, in_month, says, rough):
    text = forecast_basis(days, in_month)
    assert says in text
    assert ("rough" in text) == rough


def test_what_to_cut_lists_the_idle_resources_largest_first_with_their_totals(loaded, dashboard):
    """The panel's table is the idle_resources query's rows, costs to the cent; each team's
    total and share of its last bill are the SQL's; a tag narrows both."""
    server, path = loaded
    teams = [server.data_for(t).team["uuid"] for t in server.tokens]
    app = dashboard(path)
    every = params(teams, FIRST, OPEN)
    rows = sql(path, "idle_resources", max_age_days=90, **every)
    kinds = {r["kind"] for r in rows}
    assert {"unattached_volume", "old_snapshot", "unassigned_reserved_ip"} <= kinds
    shown = next(t for t in (d.value for d in app.dataframe) if "Idle since" in t.columns)
    assert list(shown.columns) == [
        "Kind",
        "Resource",
        "Resource ID",
        "Region",
        "Project",
        "Tags",
        "Idle since",
        "Last month (USD)",
        "Month to date (USD)",
        "Month",
        "Team",
    ]
    assert list(shown["Resource ID"]) == [r["resource_id"] for r in rows]
    assert list(shown["Last month (USD)"]) == [f"{r['cost_last_month']:,.2f}" for r in rows]
    assert [r["cost_last_month"] for r in rows] == sorted(
        (r["cost_last_month"] for r in rows), reverse=True
    )
    totals = sql(path, "idle_total", max_age_days=90, **every)
    bills = {r["team_uuid"]: r for r in sql(path, "last_closed_month", teams=teams)}
    figures = metrics(app)
    for total in totals:
        mine = [r for r in rows if r["team_uuid"] == total["team_uuid"]]
        assert total["idle_amount"] == sum(r["cost_last_month"] for r in mine)
        assert total["resources"] == len(mine)
        label = f"{total['team_name']} · idle in {CLOSED}"
        assert figures[label] == money(total["idle_amount"])
        assert figures[f"{total['team_name']} · share of that bill"] == share_text(
            total["idle_amount"], bills[total["team_uuid"]]["invoice_total"]
        )
    # The tag filter: only resources tagged env:prod (snapshots and volumes have tags).
    tagged = sql(
        path,
        "idle_resources",
        max_age_days=90,
        **params(teams, FIRST, OPEN, tag_key="env", tag_value="prod"),
    )
    assert tagged and all("env:prod" in r["resource_tags"].split(", ") for r in tagged)
    assert len(tagged) < len(rows)
