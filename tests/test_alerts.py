"""Budget and anomaly alerts: the checks find exactly what was planted, and each alert reaches a
local webhook (apprise `json://` to loopback) once, without a token, without failing the load."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median

import dagster as dg
import pandas as pd
import pytest
from pydantic import SecretStr

from pipeline.alerts import delivery as notify
from pipeline.alerts.delivery import deliver, destination_of
from pipeline.alerts.keys import budget_key, new_sku_key, spike_key
from pipeline.alerts.rules import (
    OPEN_MONTHS,
    TEAMS,
    Alert,
    anomaly_alerts,
    budget_level,
    budget_of,
    evaluate_budgets,
)
from pipeline.defs.alert_checks import alerts_checks
from pipeline.defs.assets import source_asset
from pipeline.defs.resources import AlertsResource
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.settings import Settings, SettingsError
from pipeline.sources import SOURCES
from pipeline.warehouse.store import Warehouse

ASSETS = [source_asset(s) for s in SOURCES]
SECRET_PATH = "hook/T0KEN-s3cr3t-webhook-path"
TODAY = datetime.now(UTC).date()
# Three months, so every planted day has a full baseline and the data starts 30 days before.
FIRST = previous_month(previous_month(month_of(datetime.now(UTC))))
LAST = month_of(datetime.now(UTC))


@pytest.fixture
def planted_sandbox(plant_anomalies) -> tuple[SandboxServer, list]:
    """Three teams; the second has a spike two days ago and a new SKU from three days ago."""
    teams = build_teams(3, today=TODAY)
    data = teams["sandbox-token-2"]
    planted = plant_anomalies(data, TODAY - timedelta(days=2), TODAY - timedelta(days=3))
    return SandboxServer.with_teams(teams), planted


def run(materialize, server, path, **kw):
    return materialize(server, path, FIRST, LAST, assets=[*ASSETS, alerts_checks], **kw)


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_a_run_raises_exactly_the_planted_alerts_once_each(
    alert_env, receiver, materialize, warehouse_path, rows, planted_sandbox
):
    alert_env(ALERT_URLS=receiver.url)
    server, planted = planted_sandbox
    with server:
        team = server.data_for("sandbox-token-2").team
        result = run(materialize, server, warehouse_path)
        assert result.success
        found = checks(result)
        assert not found["cost_spikes"].passed and not found["new_skus"].passed
        assert found["budget"].passed  # no budget is set
        assert found["cost_spikes"].severity == dg.AssetCheckSeverity.WARN
        assert found["cost_spikes"].metadata["anomalies"].value == 1
        assert found["new_skus"].metadata["anomalies"].value == 1
        assert found["cost_spikes"].metadata["notifications_sent"].value == 1
        keys = rows(warehouse_path, "SELECT alert_key, team_uuid FROM alerts_sent ORDER BY 1")
        assert keys == sorted((p.key, team["uuid"]) for p in planted)

        # Each planted alert arrived once, naming the team, the day, the SKU and the amounts.
        assert len(receiver.bodies) == len(planted) == 2
        by_key = {p.key: p for p in planted}
        for body in receiver.bodies:
            text = body["title"] + "\n" + body["message"]
            (key,) = [k for k in by_key if f"Alert: {k}" in text]
            plant = by_key.pop(key)
            assert team["name"] in body["title"] and team["uuid"] in text
            assert plant.day in body["title"] and plant.sku in body["title"]
            assert f"${Decimal(plant.amount):,}" in body["message"]
            assert plant.region in body["message"].split("Region: ")[1].split(".")[0]
            assert "http://localhost:3000/runs/" in body["message"]
            assert body["type"] == "warning"
            assert "sandbox-token" not in text and SECRET_PATH not in text
        assert by_key == {}
        spike = next(b for b in receiver.bodies if "anomaly" in b["title"])
        assert "above its baseline of $" in spike["message"]

        # The view lists the same anomalies, with the spike's baseline from its own history.
        (spike_plant,) = [p for p in planted if p.kind == "spike"]
        history = daily_costs_of(server.data_for("sandbox-token-2"), spike_plant.sku)
        window = [
            history[d]
            for n in range(1, 15)
            if (d := (date.fromisoformat(spike_plant.day) - timedelta(days=n)).isoformat())
            in history
        ]
        assert rows(
            warehouse_path,
            "SELECT kind, sku, CAST(usage_date AS VARCHAR), cost, baseline, team_name "
            "FROM cost_anomalies WHERE usage_date >= ? ORDER BY kind",
            [FIRST + "-01"],
        ) == [
            ("new_sku", planted[1].sku, planted[1].day, Decimal("400.00"), 0, team["name"]),
            (
                "spike",
                spike_plant.sku,
                spike_plant.day,
                Decimal(spike_plant.amount),
                median(window),
                team["name"],
            ),
        ]

        # A second run finds them again and delivers nothing new.
        again = run(materialize, server, warehouse_path)
        assert not checks(again)["cost_spikes"].passed
        assert checks(again)["cost_spikes"].metadata["notifications_already_sent"].value == 1
        assert len(receiver.bodies) == 2
        assert rows(warehouse_path, "SELECT count(*) FROM alerts_sent") == [(2,)]
        stored = rows(warehouse_path, "SELECT * FROM alerts_sent")
        assert all(SECRET_PATH not in str(row) for row in stored)


def daily_costs_of(data, sku: str) -> dict[str, Decimal]:
    costs: dict[str, Decimal] = {}
    for point in data.insights:
        if point["sku"] == sku:
            day = point["start_date"]
            costs[day] = costs.get(day, Decimal(0)) + Decimal(point["total_amount"])
    return costs


def median_cents(values: list[Decimal]) -> Decimal:
    return Decimal(median(values)).quantize(Decimal("0.01"))


def test_a_receiver_that_fails_never_fails_the_load_and_gets_the_alert_next_run(
    alert_env, receiver, materialize, warehouse_path, rows, caplog, planted_sandbox
):
    alert_env(ALERT_URLS=receiver.url)
    receiver.status = 500
    server, planted = planted_sandbox
    instance = dg.DagsterInstance.ephemeral()
    with server:
        result = run(materialize, server, warehouse_path, instance=instance)
        assert result.success
        assert checks(result)["cost_spikes"].metadata["notifications_failed"].value == 1
        assert len(receiver.bodies) == 2 * notify.ATTEMPTS  # each alert, retried
        assert rows(warehouse_path, "SELECT count(*) FROM alerts_sent") == [(0,)]
        logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
        warnings = [m for m in logged if "not delivered to entry 1 of ALERT_URLS (json)" in m]
        assert len(warnings) == 2
        assert all(SECRET_PATH not in m for m in logged)
        assert SECRET_PATH not in caplog.text

        receiver.status = 200
        receiver.bodies.clear()
        assert run(materialize, server, warehouse_path).success
        assert sorted(b["message"].split("Alert: ")[1].split("\n")[0] for b in receiver.bodies) == (
            sorted(p.key for p in planted)
        )


def test_budgets_warn_and_fail_per_team_and_the_sample_data_has_no_anomaly(
    alert_env, receiver, materialize, warehouse_path, rows
):
    teams = build_teams(3, today=TODAY)
    with SandboxServer.with_teams(teams) as server:
        # Load once to learn each team's forecast, then set budgets around them.
        alert_env()
        assert run(materialize, server, warehouse_path).success
        forecasts = dict(
            rows(warehouse_path, "SELECT team_uuid, forecast FROM month_forecast WHERE is_open")
        )
        first, second, third = (teams[t].team for t in server.tokens)
        warn_budget = (forecasts[first["uuid"]] / Decimal("0.9")).quantize(Decimal("1"))
        fail_budget = (forecasts[second["uuid"]] / Decimal("1.1")).quantize(Decimal("1"))
        alert_env(
            ALERT_URLS=receiver.url,
            BUDGET_USD=str(warn_budget),
            BUDGETS=f"{second['name']}={fail_budget}, {third['uuid']}=1000000",
            DAGSTER_UI_URL="https://dagster.example.com/",
        )
        result = run(materialize, server, warehouse_path)
        found = checks(result)
        assert found["cost_spikes"].passed and found["new_skus"].passed
        assert not found["budget"].passed
        assert found["budget"].severity == dg.AssetCheckSeverity.ERROR
        month = LAST
        assert sorted(k for (k,) in rows(warehouse_path, "SELECT alert_key FROM alerts_sent")) == (
            sorted(
                [f"budget:{first['uuid']}:{month}:warn", f"budget:{second['uuid']}:{month}:fail"]
            )
        )
        titles = sorted(b["title"] for b in receiver.bodies)
        assert titles == [
            f"Budget exceeded: {second['name']}, {month}",
            f"Budget warning: {first['name']}, {month}",
        ]
        for body in receiver.bodies:
            assert "https://dagster.example.com/assets/balance?view=checks" in body["message"]
            assert "sandbox-token" not in body["title"] + body["message"]
            assert SECRET_PATH not in body["title"] + body["message"]
        warned = next(b for b in receiver.bodies if "warning" in b["title"])
        assert f"budget of ${warn_budget:,}.00" in warned["message"]
        assert f"forecast for the month: ${forecasts[first['uuid']]:,}" in warned["message"]
        assert warned["type"] == "warning"
        assert next(b for b in receiver.bodies if "exceeded" in b["title"])["type"] == "failure"
        assert run(materialize, server, warehouse_path).success
        assert len(receiver.bodies) == 2


def test_the_budget_rule():
    share = Decimal("0.8")
    assert budget_level(Decimal("100"), Decimal("790"), Decimal("1000"), share) is None
    assert budget_level(Decimal("100"), Decimal("800"), Decimal("1000"), share) == "warn"
    assert budget_level(Decimal("100"), Decimal("1000.01"), Decimal("1000"), share) == "fail"
    assert budget_level(Decimal("1000.01"), None, Decimal("1000"), share) == "fail"
    settings = Settings.from_env({"BUDGET_USD": "100", "BUDGETS": "Team A=5000, u-1=1200.50"})
    thresholds = AlertsResource.from_settings(settings).thresholds()
    assert budget_of(thresholds, "u-1", "Team A") == Decimal("1200.50")  # the uuid wins
    assert budget_of(thresholds, "u-2", "Team A") == Decimal("5000.00")
    assert budget_of(thresholds, "u-3", "Team B") == Decimal("100.00")
    unset = AlertsResource.from_settings(Settings.from_env({})).thresholds()
    assert budget_of(unset, "u-3", "Team B") is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BUDGET_USD": "12.345"}, "BUDGET_USD"),
        ({"BUDGET_USD": "-5"}, "BUDGET_USD"),
        ({"BUDGETS": "Team A"}, "BUDGETS"),
        ({"BUDGETS": "Team A=1, Team A=2"}, "BUDGETS"),
        ({"BUDGET_WARN_SHARE": "1.5"}, "BUDGET_WARN_SHARE"),
        ({"ANOMALY_MADS": "0"}, "ANOMALY_MADS"),
        ({"ANOMALY_MIN_RATIO": "x"}, "ANOMALY_MIN_RATIO"),
        ({"NEW_SKU_MIN_USD": "ten"}, "NEW_SKU_MIN_USD"),
        ({"ALERT_LOOKBACK_DAYS": "0"}, "ALERT_LOOKBACK_DAYS"),
        ({"ALERT_URLS": f"json://ok, hooks.example.com/{SECRET_PATH}"}, "entry 2 of ALERT_URLS"),
        ({"DAGSTER_UI_URL": "localhost:3000"}, "DAGSTER_UI_URL"),
    ],
)
def test_each_bad_alert_setting_is_named_and_no_url_shown(env, named):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert named in str(raised.value)
    assert SECRET_PATH not in str(raised.value)


def test_alert_settings_are_read_and_urls_kept_secret():
    settings = Settings.from_env(
        {
            "ALERT_URLS": f"json://127.0.0.1:9/{SECRET_PATH} slack://a/b/c,",
            "BUDGET_WARN_SHARE": "75%",
        }
    )
    assert [u.get_secret_value() for u in settings.alert_urls] == [
        f"json://127.0.0.1:9/{SECRET_PATH}",
        "slack://a/b/c",
    ]
    assert settings.alerts.budget_warn_share == "0.75"
    assert SECRET_PATH not in repr(settings) and SECRET_PATH not in str(settings)
    destination = destination_of(f"json://127.0.0.1:9/{SECRET_PATH}")
    assert destination.startswith("json:") and "127.0.0.1" not in destination


def test_an_unknown_url_kind_is_logged_by_its_place_and_not_retried():
    alert = Alert("spike:t:sku:X:2026-01-02", "cost_spikes", "daily_costs", "spike", "warn",
                  "t", "Team", "Cost anomaly")  # fmt: skip
    messages: list[str] = []

    class Log:
        def info(self, msg: str) -> None:
            messages.append(msg)

        def warning(self, msg: str) -> None:
            messages.append(msg)

    report = deliver(
        [alert], [SecretStr(f"nosuchscheme://{SECRET_PATH}")], "http://localhost:3000", Log()
    )
    assert len(report.failed) == 1 and report.sent == []
    assert messages == [
        "alert spike:t:sku:X:2026-01-02 not delivered to entry 1 of ALERT_URLS (nosuchscheme) "
        "after 1 attempt(s): apprise does not know this kind of URL; it will be tried again on "
        "the next run"
    ]


def test_the_anomaly_rule_on_a_hand_made_account(tmp_path):
    """Service spikes spread over SKUs, a SKU spike that silences its service's, a flat cost
    a little higher, a sporadic SKU, and new SKUs before and after the team's first 30 days."""
    start = date(2026, 1, 1)
    days = [start + timedelta(days=n) for n in range(41)]  # through 2026-02-10
    costs: list[tuple[str, str, date, str]] = []  # sku, description, day, amount

    def every_day(sku: str, description: str, amount: str, changes: dict) -> None:
        for day in days:
            costs.append((sku, description, day, changes.get(day.isoformat(), amount)))

    every_day("FLAT", "web-01", "10.00", {"2026-02-05": "12.00"})
    every_day("A1", "db-a", "20.00", {"2026-02-08": "110.00"})
    every_day("A2", "db-b", "20.00", {"2026-02-08": "110.00"})
    every_day("B1", "vol-1", "5.00", {"2026-02-09": "900.00"})
    costs += [("S", "sporadic", d, "30.00") for d in days[::3]] + [
        ("S", "sporadic", date(2026, 2, 10), "900.00"),
        ("N", "gpu", date(2026, 2, 3), "5.00"),
        ("N", "gpu", date(2026, 2, 4), "25.00"),
        ("EARLY", "early", date(2026, 1, 20), "80.00"),
    ]
    lines = [("web-01", "Droplets"), ("db-a", "Managed Databases"),
             ("db-b", "Managed Databases"), ("vol-1", "Volumes")]  # fmt: skip
    store = Warehouse(tmp_path / "w.duckdb")
    store.migrate()
    with store.transaction() as con:
        con.execute("INSERT INTO teams VALUES ('t', 'Team T', 1, now(), now())")
        for n, (sku, description, day, amount) in enumerate(costs):
            con.execute(
                "INSERT INTO daily_costs BY NAME SELECT 'do:team:t' AS team_urn, "
                "strftime($day, '%Y-%m') AS usage_month, $n AS point_number, $day AS usage_date, "
                "'nyc3' AS region, $sku AS sku, $description AS description, "
                "CAST($amount AS DECIMAL(18, 2)) AS amount, now() AS loaded_at, 't' AS team_uuid",
                {"day": day, "n": n, "sku": sku, "description": description, "amount": amount},
            )
        for n, (description, product) in enumerate(lines):
            con.execute(
                "INSERT INTO invoice_items BY NAME SELECT 'inv' AS invoice_uuid, "
                "'2026-01' AS invoice_period, $n AS line_number, $product AS product, "
                "$description AS description, 1.00 AS amount, 'final' AS status, "
                "now() AS loaded_at, 't' AS team_uuid",
                {"n": n, "product": product, "description": description},
            )
    with store.connect(read_only=True) as con:
        found = con.execute(
            "SELECT strftime(usage_date, '%Y-%m-%d') AS day, kind, grain, sku, service, cost, "
            "baseline, mad, alert_key FROM cost_anomalies_at(6, 100, 5, 10) ORDER BY day"
        ).fetchall()
    assert found == [
        ("2026-02-04", "new_sku", "sku", "N", None, Decimal("25.00"), 0, 0, "new_sku:t:N"),
        ("2026-02-08", "spike", "service", None, "Managed Databases", Decimal("220.00"),
         Decimal("40"), 0, "spike:t:service:Managed Databases:2026-02-08"),
        ("2026-02-09", "spike", "sku", "B1", "Volumes", Decimal("900.00"), Decimal("5"), 0,
         "spike:t:sku:B1:2026-02-09"),
    ]  # fmt: skip
    # At the defaults (ratio 10) the databases' 5.5-fold day is no anomaly; the rest stands.
    assert store.query("SELECT alert_key FROM cost_anomalies")["alert_key"].tolist() == [
        "new_sku:t:N",
        "spike:t:sku:B1:2026-02-09",
    ]


def test_a_month_with_a_balance_but_no_insights_yet_is_judged_on_its_balance(tmp_path):
    """On the 1st, the open month has a balance snapshot but no Insights day: no run rate, and
    the forecast is the month to date."""
    store = Warehouse(tmp_path / "w.duckdb")
    store.migrate()
    with store.transaction() as con:
        con.execute("INSERT INTO teams VALUES ('t', 'Team T', 1, now(), now())")
        con.execute(
            "INSERT INTO balance VALUES (now(), strftime(current_date, '%Y-%m'), 0, 0, 120.50, "
            "now(), 't')"
        )
    thresholds = AlertsResource.from_settings(Settings.from_env({"BUDGETS": "t=100"})).thresholds()
    verdict = evaluate_budgets(store.query(OPEN_MONTHS), store.query(TEAMS), thresholds)
    (alert,) = verdict.alerts
    assert alert.key == f"budget:t:{TODAY:%Y-%m}:fail"
    assert alert.lines[0] == f"Team Team T (t) is past its budget for {TODAY:%Y-%m}."
    assert "Month to date: $120.50; forecast for the month: $120.50 (120.5 %" in alert.lines[1]
    assert alert.lines[2].startswith("No Billing Insights day of the month is loaded yet")
    assert verdict.rows["level"].tolist() == ["fail"]


def test_a_spike_names_the_projects_and_tags_behind_its_sku():
    row = pd.Series(
        {
            "team_uuid": "t1",
            "team_name": "Team One",
            "usage_date": date(2026, 11, 30),
            "cost": Decimal("120.00"),
            "baseline": Decimal("10.00"),
            "excess": Decimal("110.00"),
            "mad": Decimal("1.00"),
            "kind": "spike",
            "grain": "sku",
            "sku": "DO-1",
            "service": "Droplets",
            "region": "nyc3",
            "alert_key": "spike:t1:sku:DO-1:2026-11-30",
        }
    )
    owners = pd.DataFrame(
        [
            ("t1", "2026-11", "DO-1", "project:web", Decimal("80.50")),
            ("t1", "2026-11", "DO-1", "tag:env:prod", Decimal("80.50")),
            ("t1", "2026-11", "DO-2", "project:other", Decimal("9.00")),  # another SKU
            ("t2", "2026-11", "DO-1", "project:theirs", Decimal("9.00")),  # another team
        ],
        columns=["team_uuid", "invoice_period", "sku", "owner", "amount"],
    )
    (alert,) = anomaly_alerts(pd.DataFrame([row]), owners)
    assert alert.lines[-2:] == (
        "Projects behind it this month: web ($80.50).",
        "Tags behind it this month: env:prod ($80.50).",
    )
    assert anomaly_alerts(pd.DataFrame([row]))[0].lines[-1].startswith("Region: nyc3")


def test_alert_keys_keep_their_format():
    """Keys already in `alerts_sent` must match next run's, or every open alert is sent again;
    the SQL's anomaly keys are checked against these on planted ones in test_analytics."""
    assert spike_key("t", "sku", "DO-1", "2026-11-30") == "spike:t:sku:DO-1:2026-11-30"
    assert spike_key(None, "service", "Droplets", "2026-11-30") == (
        "spike::service:Droplets:2026-11-30"
    )
    assert new_sku_key("t", "GPU-1") == "new_sku:t:GPU-1"
    assert budget_key("t", "2026-11", "warn") == "budget:t:2026-11:warn"
    assert budget_key("t", "2026-11", "fail", "project:web") == "budget:t:2026-11:project:web:fail"
