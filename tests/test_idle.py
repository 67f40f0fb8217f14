"""What to cut: the idle resources of each team's latest inventory and what they cost.

Every expected row is computed here, in Python with integer cents, from what the sandbox serves
(its inventory lists, its invoice items) by the rules the data dictionary states, and compared
value by value with `idle_resources` and `idle_cost_by_project` after real runs.
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import time_machine

from pipeline.alerts.rules import Thresholds
from pipeline.defs.alert_checks import idle_checks
from pipeline.defs.definitions import source_defs
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import SandboxData, build_teams
from pipeline.settings import Settings, SettingsError
from pipeline.sources import INVENTORY, INVOICES
from pipeline.sources.inventory import RESERVED_IPS, SNAPSHOTS, VOLUMES

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
MONTHS = ("2026-10", "2026-12")  # two closed months and the open one
ASSETS = [a for source in (INVOICES, *INVENTORY) for a in source_defs(source)]
DAY = 86_400
SPEC = Path(__file__).parents[1] / "spec/digitalocean"
IDLE = (
    "SELECT kind, resource_id, resource_name, region, invoice_period, cost_last_month, "
    "month_to_date, idle_since, project_name, tags FROM idle_resources WHERE team_uuid = ?"
)


def cents(amount: str) -> int:
    return int((Decimal(amount) * 100).to_integral_exact())


def dollars(amount: int) -> Decimal:
    return (Decimal(amount) / 100).quantize(Decimal("0.01"))


def query(path: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def taken(path: Path, team: str) -> dict[str, list[datetime]]:
    """Each list's snapshots of the team, oldest first: when they were read."""
    found: dict[str, list[datetime]] = defaultdict(list)
    for source, at in query(
        path,
        "SELECT source, snapshot_at FROM inventory_snapshots WHERE team_uuid = ? "
        "ORDER BY snapshot_at",
        [team],
    ):
        found[source].append(at)
    return found


def idle_in(data: SandboxData, read_at: datetime, max_age_days: int = 90) -> dict[tuple, dict]:
    """The sandbox's idle resources by the documented rules, (kind, id) → (source, record)."""
    lists = data.inventory.lists
    found: dict[tuple, dict] = {}
    for droplet in lists["droplets"]:
        if droplet["status"] == "off":
            found[("powered_off_droplet", str(droplet["id"]))] = droplet
    for volume in lists["volumes"]:
        if volume["droplet_ids"] == []:
            found[("unattached_volume", volume["id"])] = volume
    for balancer in lists["load_balancers"]:
        if balancer["droplet_ids"] == [] and not balancer.get("tag"):
            found[("load_balancer_without_targets", balancer["id"])] = balancer
    for address in lists["reserved_ips"]:
        if address["droplet"] is None:
            found[("unassigned_reserved_ip", address["ip"])] = address
    for snapshot in lists["snapshots"]:
        created = datetime.fromisoformat(snapshot["created_at"].replace("Z", "+00:00"))
        if (read_at - created).total_seconds() > max_age_days * DAY:
            found[("old_snapshot", snapshot["id"])] = snapshot
    return found


def costs(data: SandboxData, kind: str, resource_id: str) -> tuple[int, int]:
    """Cents of the latest closed month's items and of the preview's that name the resource:
    a droplet's by `resource_id`, every other kind's by `resource_uuid`."""
    field = "resource_id" if kind == "powered_off_droplet" else "resource_uuid"
    last, preview = data.invoices[0], data.preview
    return tuple(
        sum(
            cents(i["amount"]) for i in data.items[b["invoice_uuid"]] if i.get(field) == resource_id
        )
        for b in (last, preview)
    )


def project_of(data: SandboxData, kind: str, record: dict) -> str | None:
    """The project a resource is assigned to (its URN), else its own `project_id`."""
    names = {p["id"]: p["name"] for p in data.inventory.lists["projects"]}
    urn = {
        "powered_off_droplet": "droplet",
        "unattached_volume": "volume",
        "load_balancer_without_targets": "loadbalancer",
    }.get(kind)
    resource_id = str(record.get("id", record.get("ip")))
    for project, assigned in data.inventory.project_resources.items():
        if urn and any(a["urn"] == f"do:{urn}:{resource_id}" for a in assigned):
            return names[project]
    return names.get(record.get("project_id"))


def region_of(record: dict) -> str:
    if "regions" in record:
        return record["regions"][0]
    region = record["region"]
    return region["slug"] if isinstance(region, dict) else region


def expected_rows(data: SandboxData, read_at: datetime, since: dict | None = None) -> set:
    """The rows of IDLE the team should have; `since` overrides idle_since by (kind, id)."""
    rows = set()
    for (kind, resource_id), record in idle_in(data, read_at).items():
        last, month = costs(data, kind, resource_id)
        rows.add(
            (
                kind,
                resource_id,
                record.get("name"),
                region_of(record),
                data.invoices[0]["invoice_period"],
                dollars(last),
                dollars(month),
                (since or {}).get((kind, resource_id), read_at),
                project_of(data, kind, record),
                tuple(record.get("tags") or ()),
            )
        )
    return rows


def stored(path: Path, team: str) -> set:
    return {(*row[:-1], tuple(row[-1])) for row in query(path, IDLE, [team])}


@pytest.fixture(scope="module")
def teams_loaded(tmp_path_factory, materialize, bill_to):
    """Two teams, invoices of MONTHS and the whole inventory in one run; the first team's
    first unassigned reserved IP has two lines in the last closed month and two in the open."""
    path = tmp_path_factory.mktemp("idle") / "warehouse.duckdb"
    teams = build_teams(2, now=NOW)
    first = teams["sandbox-token"]
    address = next(a["ip"] for a in first.inventory.lists["reserved_ips"] if a["droplet"] is None)
    planted = bill_to(first, address)
    with SandboxServer.with_teams(teams) as server:
        with time_machine.travel(NOW, tick=True):
            materialize(server, path, *MONTHS, assets=ASSETS)
        yield server, path, address, planted


def test_each_team_lists_exactly_its_idle_resources_and_their_costs(teams_loaded):
    server, path, address, planted = teams_loaded
    kinds_seen = set()
    for token in server.tokens:
        data = server.data_for(token)
        team = data.team["uuid"]
        (read_at,) = set(taken(path, team)["snapshots"])
        expected = {
            (*row[:7], taken(path, team)[SOURCE_OF[row[0]]][0], *row[8:])
            for row in expected_rows(data, read_at)
        }
        assert stored(path, team) == expected
        kinds_seen |= {row[0] for row in expected}
    assert kinds_seen == set(SOURCE_OF)
    # The planted reserved IP: its lines, to the cent, in both months.
    first = server.data_for(server.tokens[0]).team["uuid"]
    assert query(
        path,
        "SELECT invoice_period, cost_last_month, month_to_date, resource_name FROM idle_resources "
        "WHERE team_uuid = ? AND resource_id = ?",
        [first, address],
    ) == [("2026-11", Decimal(planted["2026-11"]), Decimal(planted["2026-12"]), None)]
    assert Decimal(planted["2026-11"]) > 0 and Decimal(planted["2026-12"]) > 0


SOURCE_OF = {
    "powered_off_droplet": "droplets",
    "unattached_volume": "volumes",
    "load_balancer_without_targets": "load_balancers",
    "unassigned_reserved_ip": "reserved_ips",
    "old_snapshot": "snapshots",
}


def test_an_idle_resource_with_no_item_costs_zero_and_the_list_runs_largest_first(teams_loaded):
    server, path, address, _ = teams_loaded
    team = server.data_for(server.tokens[0]).team["uuid"]
    rows = query(
        path,
        "SELECT kind, resource_id, cost_last_month, month_to_date FROM idle_resources "
        "WHERE team_uuid = ?",
        [team],
    )
    # The other unassigned reserved IP: no line names it, in either month.
    others = [r for r in rows if r[0] == "unassigned_reserved_ip" and r[1] != address]
    assert [(r[2], r[3]) for r in others] == [(Decimal("0.00"), Decimal("0.00"))]
    assert str(others[0][2]) == "0.00"
    assert [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    assert any(r[2] > 0 for r in rows) and any(r[2] == 0 for r in rows)


def test_the_summary_is_each_projects_idle_cost_and_its_share_of_the_bill(teams_loaded):
    server, path, _, _ = teams_loaded
    expected = {}
    for token in server.tokens:
        data = server.data_for(token)
        team = data.team["uuid"]
        (read_at,) = set(taken(path, team)["snapshots"])
        bill = sum(cents(i["amount"]) for i in data.items[data.invoices[0]["invoice_uuid"]])
        by_project: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (kind, resource_id), record in idle_in(data, read_at).items():
            project = project_of(data, kind, record) or "(no project)"
            by_project[project][0] += 1
            by_project[project][1] += costs(data, kind, resource_id)[0]
        for project, (count, amount) in by_project.items():
            share = (Decimal(amount) / Decimal(bill)).quantize(Decimal("0.0001"))
            expected[(team, project)] = (count, dollars(amount), dollars(bill), share)
    rows = query(
        path,
        "SELECT team_uuid, project_name, resources, idle_amount, bill_amount, share "
        "FROM idle_cost_by_project WHERE invoice_period = '2026-11'",
    )
    assert {(r[0], r[1]): r[2:] for r in rows} == expected
    assert len(rows) == len(expected)


def test_a_daily_run_drops_what_is_in_use_again_and_adds_what_is_newly_idle(tmp_path, materialize):
    """Re-read the next day: a deleted volume, a powered-on droplet and a re-attached volume
    drop out, a newly detached volume appears; the others keep their idle_since."""
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        data = server.data
        team = data.team["uuid"]
        with time_machine.travel(NOW, tick=True):
            materialize(server, path, "2026-11", "2026-12", assets=ASSETS)
        first = taken(path, team)
        before = {(r[0], r[1]) for r in stored(path, team)}
        lists = data.inventory.lists
        idle_volumes = [v for v in lists["volumes"] if v["droplet_ids"] == []]
        deleted, reattached = idle_volumes[0], idle_volumes[1]
        lists["volumes"].remove(deleted)
        reattached["droplet_ids"] = [lists["droplets"][0]["id"]]
        detached = next(v for v in lists["volumes"] if v["droplet_ids"])
        detached["droplet_ids"] = []
        (off,) = [d for d in lists["droplets"] if d["status"] == "off"]
        off["status"] = "active"
        with time_machine.travel(NOW + timedelta(days=1), tick=True):
            materialize(server, path, "2026-12", assets=ASSETS)
        second = taken(path, team)
    after = {(r[0], r[1]) for r in stored(path, team)}
    gone = {
        ("unattached_volume", deleted["id"]),
        ("unattached_volume", reattached["id"]),
        ("powered_off_droplet", str(off["id"])),
    }
    new = ("unattached_volume", detached["id"])
    assert gone <= before and new not in before
    assert after == (before - gone) | {new}
    # Snapshots aged a day: those 90 days old at the first read are older than 90 at the second.
    read_at = second["snapshots"][-1]
    since = {
        key: first[SOURCE_OF[key[0]]][0] if key in before else second[SOURCE_OF[key[0]]][-1]
        for key in idle_in(data, read_at)
    }
    assert stored(path, team) == expected_rows(data, read_at, since)
    assert since[new] == second["volumes"][-1] > first["volumes"][0]


def test_idle_again_after_use_is_a_new_stretch_and_a_change_while_idle_is_not(
    tmp_path, materialize
):
    """Three daily reads of the volumes: one idle volume is attached on the second day and
    detached again on the third (idle since the third read); another is re-tagged while idle
    (still idle since the first)."""
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        volumes = server.data.inventory.lists["volumes"]
        again, retagged = [v for v in volumes if v["droplet_ids"] == []][:2]
        for day in range(3):
            if day == 1:
                again["droplet_ids"] = [server.data.inventory.lists["droplets"][0]["id"]]
                retagged["tags"] = ["env:retagged"]
            if day == 2:
                again["droplet_ids"] = []
            with time_machine.travel(NOW + timedelta(days=day), tick=True):
                materialize(server, path, "2026-12", assets=source_defs(VOLUMES))
        idle = {v["id"] for v in volumes if v["droplet_ids"] == []}
    reads = [at for (at,) in query(path, "SELECT snapshot_at FROM inventory_snapshots ORDER BY 1")]
    since = dict(query(path, "SELECT resource_id, idle_since FROM idle_resources"))
    assert set(since) == idle
    assert since[again["id"]] == reads[2]
    assert since[retagged["id"]] == reads[0]
    assert {since[i] for i in idle - {again["id"]}} == {reads[0]}
    tags = dict(query(path, "SELECT resource_id, tags FROM idle_resources"))
    assert tags[retagged["id"]] == ["env:retagged"]


def test_a_snapshot_exactly_at_the_age_limit_is_not_listed(tmp_path, materialize):
    """Read at NOW to the microsecond (time stands still): the snapshots created exactly 90
    days before are not idle, those created 91 are; at a limit of 89 days both are."""
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        with time_machine.travel(NOW, tick=False):
            materialize(server, path, "2026-12", assets=source_defs(SNAPSHOTS))
        snapshots = server.data.inventory.lists["snapshots"]
    assert query(path, "SELECT snapshot_at FROM inventory_snapshots") == [(NOW,)]
    age = {s["id"]: (NOW - datetime.fromisoformat(s["created_at"])).days for s in snapshots}
    assert sorted(set(age.values())) == [3, 45, 90, 91, 120, 400]
    listed = {
        r[0]
        for r in query(path, "SELECT resource_id FROM idle_resources WHERE kind = 'old_snapshot'")
    }
    assert listed == {i for i, days in age.items() if days > 90}
    at_89 = {r[0] for r in query(path, "SELECT resource_id FROM idle_resources_at(89)")}
    assert at_89 == {i for i, days in age.items() if days >= 90}
    # No closed month loaded: no invoice period, and nothing cost anything.
    assert set(query(path, "SELECT invoice_period, cost_last_month FROM idle_resources")) == {
        (None, Decimal("0.00"))
    }


@pytest.mark.parametrize(
    ("scope", "source"), [("reserved_ip:read", RESERVED_IPS), ("snapshot:read", SNAPSHOTS)]
)
def test_a_token_without_the_scope_fails_that_list_only(
    tmp_path, materialize, failure_message, scope, source
):
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        server.scopes = server.scopes - {scope}
        with time_machine.travel(NOW, tick=True):
            result = materialize(server, path, "2026-12", assets=ASSETS, raise_on_error=False)
        lists = server.data.inventory.lists
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed == {source.name}
    assert scope in failure_message(result)
    other = SNAPSHOTS if source is RESERVED_IPS else RESERVED_IPS
    counts = dict(query(path, f"SELECT 'n', count(*) FROM {other.name}"))  # noqa: S608
    assert counts == {"n": len(lists[other.name])}
    assert query(path, f"SELECT count(*) FROM {source.name}") == [(0,)]  # noqa: S608
    assert query(path, "SELECT count(*) FROM volumes") == [(len(lists["volumes"]),)]


def test_an_idle_resource_is_alerted_once_and_a_newly_idle_one_next_day(
    alert_env, receiver, materialize, warehouse_path, rows
):
    alert_env(ALERT_URLS=receiver.url, IDLE_MIN_USD="5.00")
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        data = server.data
        team = data.team
        with time_machine.travel(NOW, tick=True):
            first = materialize(
                server, warehouse_path, "2026-11", "2026-12", assets=[*ASSETS, idle_checks]
            )
        read_at = taken(warehouse_path, team["uuid"])["snapshots"][0]
        worth = {
            key: costs(data, *key)[0]
            for key in idle_in(data, read_at)
            if costs(data, *key)[0] >= 500
        }
        assert worth and len(worth) < len(idle_in(data, read_at))
        (check,) = idle_check(first)
        assert not check.passed and check.metadata["notifications_sent"].value == len(worth)
        assert len(receiver.bodies) == len(worth)
        sent = {b["title"] for b in receiver.bodies}
        for (_kind, resource_id), amount in worth.items():
            (title,) = [t for t in sent if f"({resource_id})" in t]
            assert title.startswith(f"Idle resource: {team['name']}, ")
            assert title.endswith(f"${dollars(amount):,} in 2026-11")
        day = read_at.date().isoformat()
        assert sorted(k for (k,) in rows(warehouse_path, "SELECT alert_key FROM alerts_sent")) == (
            sorted(f"idle:{team['uuid']}:{k}:{r}:{day}" for k, r in worth)
        )

        # Next day: the same ones are not sent again; a volume detached since is, once.
        lists = data.inventory.lists
        detached = max(
            (v for v in lists["volumes"] if v["droplet_ids"]),
            key=lambda v: costs(data, "unattached_volume", v["id"])[0],
        )
        assert costs(data, "unattached_volume", detached["id"])[0] >= 500
        detached["droplet_ids"] = []
        with time_machine.travel(NOW + timedelta(days=1), tick=True):
            again = materialize(server, warehouse_path, "2026-12", assets=[*ASSETS, idle_checks])
        (check,) = idle_check(again)
        assert check.metadata["notifications_sent"].value == 1
        assert check.metadata["notifications_already_sent"].value == len(worth)
        assert len(receiver.bodies) == len(worth) + 1
        assert f"({detached['id']})" in receiver.bodies[-1]["title"]
        assert rows(warehouse_path, "SELECT count(*) FROM alerts_sent") == [(len(worth) + 1,)]


def idle_check(result) -> list:
    return [c for c in result.get_asset_check_evaluations() if c.check_name == "idle_resources"]


def _bundle():
    """spec/digitalocean/bundle.py, which inlines a file's `$ref`s."""
    found = importlib.util.spec_from_file_location("bundle", SPEC / "bundle.py")
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v2/reserved_ips", "reserved_ips/reservedIPs_list.yml"),
        ("/v2/snapshots", "snapshots/snapshots_list.yml"),
    ],
)
def test_the_sandbox_answers_both_lists_as_the_spec_says(
    sandbox, api_get, openapi, path, operation
):
    bundle = _bundle()
    file = SPEC / "spec/specification/resources" / operation
    spec = bundle._inline(bundle._load(file), file)
    schema = spec["responses"]["200"]["content"]["application/json"]["schema"]
    answer = api_get(sandbox, path, per_page=200)
    assert answer.status_code == 200
    body = answer.json()
    assert openapi.errors(body, schema) == []
    key = path.rsplit("/", 1)[1]
    assert body[key] == sandbox.data.inventory.lists[key]
    assert len(body[key]) == body["meta"]["total"] > 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SNAPSHOT_MAX_AGE_DAYS": "0"}, "SNAPSHOT_MAX_AGE_DAYS '0' must be a whole number"),
        ({"SNAPSHOT_MAX_AGE_DAYS": "ninety"}, "SNAPSHOT_MAX_AGE_DAYS 'ninety' must be"),
        ({"IDLE_MIN_USD": "5.001"}, "IDLE_MIN_USD '5.001' must have at most two decimals"),
        ({"IDLE_MIN_USD": "-1"}, "IDLE_MIN_USD"),
    ],
)
def test_a_bad_idle_setting_is_named(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_the_idle_settings_default_and_are_read():
    unset = Thresholds.of(Settings.from_env({}).alerts)
    assert (unset.snapshot_max_age_days, unset.idle_min_usd) == (90, Decimal("5.00"))
    assert unset.idle_min_usd.as_tuple().exponent == -2
    read = Thresholds.of(
        Settings.from_env({"SNAPSHOT_MAX_AGE_DAYS": "30", "IDLE_MIN_USD": "$12.5"}).alerts
    )
    assert (read.snapshot_max_age_days, read.idle_min_usd) == (30, Decimal("12.50"))
