"""Who spent it: invoice items joined to the inventory they name, split by tag and project.

Every figure is computed here, in Python with integer cents, from what the sandbox serves (its
items and its inventory), by the rules the data dictionary states, and compared value by value
with the views of the analysts' file after real runs.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import time_machine

from pipeline.alerts.rules import OWNER_SPEND, Thresholds, evaluate_owner_budgets
from pipeline.defs.definitions import source_defs
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import SandboxData, build_teams
from pipeline.settings import SettingsError, parse_owner_budgets
from pipeline.sources import INSIGHTS, INVENTORY, INVOICES
from pipeline.sources.inventory import VOLUMES
from pipeline.warehouse.store import Warehouse

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
MONTHS = ("2026-09", "2026-12")  # three closed months and the open one
ASSETS = [a for source in (INVOICES, *INVENTORY) for a in source_defs(source)]
WITH_INSIGHTS = [*ASSETS, *source_defs(INSIGHTS)]
INVENTORY_ASSETS = [a for source in INVENTORY for a in source_defs(source)]
UUID_KINDS = ("volumes", "kubernetes_clusters", "databases", "load_balancers")


def cents(amount: str) -> int:
    return int((Decimal(amount) * 100).to_integral_exact())


def tag_pairs(tags: list[str]) -> dict[str, str]:
    """The documented rule: `k:v` → k = v at the first colon; plain `k` → 'true' unless the
    resource has a valued `k`; of several valued tags of one key the first wins."""
    valued: dict[str, str] = {}
    plain = set()
    for tag in tags:
        key, colon, value = tag.partition(":")
        if colon:
            valued.setdefault(key, value)
        else:
            plain.add(key)
    return {**{k: "true" for k in plain}, **valued}


def resources_of(data: SandboxData) -> tuple[dict, dict]:
    """The live resources by the id items use: droplets by `resource_id`, others by uuid."""
    lists = data.inventory.lists
    droplets = {str(d["id"]): d for d in lists["droplets"]}
    others = {str(r["id"]): r for kind in UUID_KINDS for r in lists[kind]}
    return droplets, others


def allocated(data: SandboxData, item: dict) -> dict | None:
    droplets, others = resources_of(data)
    if item.get("resource_id") in droplets:
        return droplets[item["resource_id"]]
    return others.get(item.get("resource_uuid"))


def month_items(data: SandboxData) -> dict[str, list[dict]]:
    return {
        invoice["invoice_period"]: data.items[invoice["invoice_uuid"]]
        for invoice in data.all_invoices()
        if MONTHS[0] <= invoice["invoice_period"] <= MONTHS[1]
    }


def each_month(server: SandboxServer):
    """(data, month, items) for every team and month of MONTHS."""
    for token in server.tokens:
        data = server.data_for(token)
        for month, items in month_items(data).items():
            yield data, month, items


def expected_cost_by_tag(data: SandboxData) -> dict[tuple, int]:
    droplets, others = resources_of(data)
    keys = {k for r in [*droplets.values(), *others.values()] for k in tag_pairs(r.get("tags", []))}
    out: dict[tuple, int] = defaultdict(int)
    for month, items in month_items(data).items():
        for item in items:
            resource = allocated(data, item)
            pairs = tag_pairs(resource.get("tags", [])) if resource else {}
            for key in keys:
                out[(data.team["uuid"], month, key, pairs.get(key))] += cents(item["amount"])
    return dict(out)


@pytest.fixture(scope="module")
def teams_loaded(tmp_path_factory, materialize):
    """Two teams, every month of MONTHS, invoices and the whole inventory, in one run."""
    path = tmp_path_factory.mktemp("allocation") / "warehouse.duckdb"
    with SandboxServer.with_teams(build_teams(2, now=NOW)) as server:
        with time_machine.travel(NOW, tick=True):
            result = materialize(server, path, *MONTHS, assets=WITH_INSIGHTS)
        yield server, path, result


def query(path: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_cost_by_tag_is_exact_per_team_month_and_key(teams_loaded):
    server, path, _ = teams_loaded
    stored = {
        (team, month, key, value): cents(str(amount))
        for team, month, key, value, amount in query(
            path,
            "SELECT team_uuid, invoice_period, tag_key, tag_value, amount FROM cost_by_tag",
        )
    }
    expected: dict[tuple, int] = {}
    for token in server.tokens:
        expected |= expected_cost_by_tag(server.data_for(token))
    assert stored == expected
    # Each key splits its month whole: its values and the untagged rest add up to the items.
    totals = {
        (data.team["uuid"], month): sum(cents(i["amount"]) for i in items)
        for data, month, items in each_month(server)
    }
    by_key: dict[tuple, int] = defaultdict(int)
    for (team, month, key, _), amount in stored.items():
        by_key[(team, month, key)] += amount
    assert by_key and all(amount == totals[(t, m)] for (t, m, _), amount in by_key.items())


def test_the_tag_rules_hold_on_the_resources_that_test_them(teams_loaded):
    _, path, _ = teams_loaded
    tags = dict(
        ((kind, name, key), value)
        for kind, name, key, value in query(
            path,
            "SELECT r.resource_kind, r.name, t.tag_key, t.tag_value FROM resource_tags AS t "
            "JOIN inventory_resources AS r USING (team_uuid, source, valid_from, resource_id)",
        )
    )
    raw = query(path, "SELECT resource_kind, name, tags, resource_id FROM inventory_resources")
    checked = Counter()
    for kind, name, received, resource_id in raw:
        if "env" in received and "env:prod" in received:  # the plain `env` loses to `env:prod`
            assert tags[(kind, name, "env")] == "prod"
            checked["plain loses"] += 1
        if received == ["billing"]:  # a plain tag alone is 'true'
            assert tags[(kind, name, "billing")] == "true"
            checked["plain"] += 1
        if kind == "kubernetes_cluster":  # DOKS's `k8s` and `k8s:<cluster id>`
            assert tags[(kind, name, "k8s")] == resource_id
            checked["doks"] += 1
        if "team:データ" in received:
            assert tags[(kind, name, "team")] == "データ"
            assert tags[(kind, name, "cost-center")] == "東京-42"
            checked["non-ascii"] += 1
    assert set(checked) == {"plain loses", "plain", "doks", "non-ascii"}


def test_inventory_lists_are_read_once_per_run_not_per_month(teams_loaded):
    server, _, _ = teams_loaded
    for token in server.tokens:
        data = server.data_for(token)
        team = data.team["uuid"]
        asked = Counter(r["path"] for r in server.requests if r["team"] == team)
        lists = data.inventory.lists
        assert asked["/v2/droplets"] == -(-len(lists["droplets"]) // 200)  # pages of 200
        for path in ("/v2/volumes", "/v2/kubernetes/clusters", "/v2/load_balancers"):
            assert asked[path] == 1
        assert asked["/v2/databases"] == 1  # not paged
        assert asked["/v2/projects"] == 1
        for project in lists["projects"]:
            assert asked[f"/v2/projects/{project['id']}/resources"] == 1


def project_of(data: SandboxData) -> dict[str, str]:
    """Each live resource's project name, by id, as `project_resources` assigns it."""
    return {
        r["urn"].split(":", 2)[2]: p["name"]
        for p in data.inventory.lists["projects"]
        for r in data.inventory.project_resources[p["id"]]
    }


def test_cost_by_resource_names_each_resource_its_project_tags_and_snapshot(teams_loaded):
    server, path, _ = teams_loaded
    rows = query(
        path,
        "SELECT team_uuid, invoice_period, resource_kind, resource_id, resource_name, "
        "project_name, tags, amount, snapshot_id FROM cost_by_resource",
    )
    snapshots = dict(
        query(path, "SELECT source || ':' || team_uuid, snapshot_id FROM inventory_snapshots")
    )
    expected: dict[tuple, int] = defaultdict(int)
    names: dict[tuple, tuple] = {}
    for token in server.tokens:
        data = server.data_for(token)
        team = data.team["uuid"]
        projects = project_of(data)
        for month, items in month_items(data).items():
            for item in items:
                resource = allocated(data, item)
                if resource is None:
                    continue
                rid = str(resource["id"])
                expected[(team, month, rid)] += cents(item["amount"])
                names[(team, rid)] = (
                    resource["name"],
                    projects[rid],
                    tag_pairs(resource.get("tags", [])),
                )
    stored = {(t, m, rid): cents(str(a)) for t, m, _, rid, _, _, _, a, _ in rows}
    assert stored == dict(expected)
    kinds = {
        "droplet": "droplets",
        "volume": "volumes",
        "kubernetes_cluster": "kubernetes_clusters",
    }
    kinds |= {"database_cluster": "database_clusters", "load_balancer": "load_balancers"}
    for team, _, kind, rid, name, project, tags, _, snapshot in rows:
        assert (name, project, json.loads(tags)) == names[(team, rid)]
        assert snapshot == snapshots[f"{kinds[kind]}:{team}"]  # one run: its snapshot


def line_owner(data: SandboxData, projects: dict[str, str], item: dict) -> tuple:
    """The line's resource, its id, and its project: the resource's, else the line's own."""
    resource = allocated(data, item)
    rid = str(resource["id"]) if resource else None
    return resource, rid, projects[rid] if rid else (item.get("project_name") or None)


def test_item_allocation_names_each_line_its_resource(teams_loaded):
    server, path, _ = teams_loaded
    stored = {
        (team, month, line): (rid, project)
        for team, month, inv, line, rid, project in query(
            path,
            "SELECT team_uuid, invoice_period, invoice_uuid, line_number, resource_id, "
            "project_name FROM item_allocation",
        )
    }
    expected = {}
    for data, month, items in each_month(server):
        projects = project_of(data)
        for line, item in enumerate(items, start=1):
            _, rid, project = line_owner(data, projects, item)
            expected[(data.team["uuid"], month, line)] = (rid, project)
    assert stored == expected


def test_sku_owners_name_the_projects_and_tags_behind_each_sku(teams_loaded):
    """A SKU's owners: the month's lines its Insights points describe, allocated."""
    server, path, _ = teams_loaded
    stored = {
        (t, m, sku, owner): cents(str(a))
        for t, m, sku, owner, a in query(
            path, "SELECT team_uuid, invoice_period, sku, owner, amount FROM sku_owners"
        )
    }
    expected: dict[tuple, int] = defaultdict(int)
    for token in server.tokens:
        data = server.data_for(token)
        projects = project_of(data)
        described: dict[tuple, set] = defaultdict(set)
        for point in data.insights:
            if point.get("sku") and point.get("description"):
                month = point["start_date"][:7]
                group = point.get("group_description") or ""
                described[(month, point["sku"])].add((point["description"], group))
        for month, items in month_items(data).items():
            for (point_month, sku), pairs in described.items():
                if point_month != month:
                    continue
                for item in items:
                    if (item.get("description"), item.get("group_description") or "") not in pairs:
                        continue
                    resource, _, project = line_owner(data, projects, item)
                    key = (data.team["uuid"], month, sku)
                    if project:
                        expected[(*key, f"project:{project}")] += cents(item["amount"])
                    pairs_of = tag_pairs(resource.get("tags", [])) if resource else {}
                    for tag_key, value in pairs_of.items():
                        expected[(*key, f"tag:{tag_key}:{value}")] += cents(item["amount"])
    assert stored == dict(expected)
    assert any(owner.startswith("tag:") for *_, owner in stored)


def test_allocation_coverage_adds_up(teams_loaded):
    server, path, _ = teams_loaded
    stored = {
        (t, m): (cents(str(a)), cents(str(al)), cents(str(tg)), share)
        for t, m, a, al, tg, share in query(
            path,
            "SELECT team_uuid, invoice_period, amount, allocated_amount, tagged_amount, share "
            "FROM allocation_coverage",
        )
    }
    expected = {}
    for data, month, items in each_month(server):
        total = sum(cents(i["amount"]) for i in items)
        found = [(i, allocated(data, i)) for i in items]
        on = sum(cents(i["amount"]) for i, r in found if r is not None)
        tagged = sum(cents(i["amount"]) for i, r in found if r is not None and r.get("tags"))
        share = (Decimal(on) / Decimal(total)).quantize(Decimal("0.0001"))
        expected[(data.team["uuid"], month)] = (total, on, tagged, share)
    assert stored == expected
    assert any(0 < on < total for total, on, _, _ in expected.values())


def test_monthly_spend_by_project_carries_the_projects_ids(teams_loaded):
    server, path, _ = teams_loaded
    rows = query(
        path,
        "SELECT team_uuid, project_name, project_id FROM monthly_spend_by_project "
        "WHERE project_name <> '(no project)'",
    )
    ids = {
        (server.data_for(t).team["uuid"], p["name"]): p["id"]
        for t in server.tokens
        for p in server.data_for(t).inventory.lists["projects"]
    }
    assert rows and all(project_id == ids.get((team, name)) for team, name, project_id in rows)
    # An empty project is listed by the projects source, with no assignments.
    empty = query(
        path,
        "SELECT count(*) FROM projects AS p WHERE name = 'Archive (empty)' AND NOT EXISTS "
        "(SELECT 1 FROM project_resources AS r WHERE r.project_id = p.project_id)",
    )
    assert empty == [(2,)]


def test_focus_tags_carry_the_resource_tags(teams_loaded):
    server, path, _ = teams_loaded
    rows = query(
        path,
        "SELECT BillingAccountId, x_InvoicePeriod, x_InvoiceUuid, x_LineNumber, Tags "
        "FROM focus_costs",
    )
    by_line = {(team, inv, line): json.loads(tags) for team, _, inv, line, tags in rows}
    checked = 0
    for token in server.tokens:
        data = server.data_for(token)
        by_period = {i["invoice_period"]: i["invoice_uuid"] for i in data.all_invoices()}
        for month, items in month_items(data).items():
            for line, item in enumerate(items, start=1):
                resource = allocated(data, item)
                expected = {}
                if item.get("project_name"):
                    expected["do/project"] = item["project_name"]
                for tag in resource.get("tags", []) if resource else []:
                    if tag == "k8s" or tag.startswith("k8s:"):
                        expected[f"do/{tag}"] = True
                for key, value in tag_pairs(resource.get("tags", []) if resource else []).items():
                    if key != "k8s":
                        plain = value == "true" and f"{key}:true" not in resource["tags"]
                        expected[key] = True if plain else value
                assert by_line[(data.team["uuid"], by_period[month], line)] == expected
                checked += 1
    assert checked == len(rows)


def test_a_closed_month_keeps_the_tags_it_had(tmp_path, materialize):
    """Snapshot rule: a month uses the newest snapshot on or before its end, else the oldest
    after it. Re-tagged between two runs, November keeps November's tags."""
    path = tmp_path / "warehouse.duckdb"
    first, second = datetime(2026, 11, 20, 8, tzinfo=UTC), NOW
    with SandboxServer.with_teams(build_teams(1, now=NOW)) as server:
        with time_machine.travel(first, tick=True):
            materialize(server, path, "2026-11", assets=INVENTORY_ASSETS)
        for volume in server.data.inventory.lists["volumes"]:
            volume["tags"] = ["env:retagged"]
        with time_machine.travel(second, tick=True):
            materialize(server, path, "2026-10", "2026-12", assets=ASSETS)
    rows = query(
        path,
        "SELECT invoice_period, tags, snapshot_at FROM cost_by_resource "
        "WHERE resource_kind = 'volume'",
    )
    seen = {}
    for month, tags, taken in rows:
        seen.setdefault(month, set()).add((tags == '{"env":"retagged"}', taken.date()))
    chosen = dict(
        query(
            path,
            "SELECT invoice_period, by_month_end FROM allocation_snapshots "
            "WHERE source = 'volumes'",
        )
    )
    assert chosen == {"2026-10": False, "2026-11": True, "2026-12": True}
    intervals = query(
        path,
        "SELECT valid_from, valid_to FROM inventory_validity WHERE source = 'volumes' "
        "ORDER BY valid_from",
    )
    assert [(f.date(), t.date() if t else None) for f, t in intervals] == [
        (first.date(), second.date()),
        (second.date(), None),
    ]
    # October ended before any snapshot: the oldest after it (the first run's).
    assert {retagged for retagged, _ in seen["2026-10"]} == {False}
    assert {taken for _, taken in seen["2026-10"] | seen["2026-11"]} == {first.date()}
    assert seen["2026-12"] == {(True, second.date())}


def test_a_missing_scope_fails_that_list_only(tmp_path, materialize, failure_message):
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        server.scopes = server.scopes - {"droplet:read"}
        with time_machine.travel(NOW, tick=True):
            result = materialize(server, path, "2026-12", assets=ASSETS, raise_on_error=False)
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed == {"droplets"}
    assert "droplet:read" in failure_message(result)
    volumes = query(path, "SELECT count(*) FROM volumes")[0][0]
    assert volumes == len(server.data.inventory.lists["volumes"])
    assert query(path, "SELECT count(*) FROM droplets") == [(0,)]


def test_a_bad_tag_list_is_named_and_the_pages_are_kept(tmp_path, materialize, failure_message):
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        volume = server.data.inventory.lists["volumes"][0]
        volume["tags"] = "env:prod"
        with time_machine.travel(NOW, tick=True):
            result = materialize(
                server, path, "2026-12", assets=INVENTORY_ASSETS, raise_on_error=False
            )
    message = failure_message(result)
    assert f"volume '{volume['id']}'" in message and "field 'tags'" in message
    kept = Warehouse(Path(str(path).replace(".duckdb", ".working.duckdb"))).query(
        "SELECT count(*) AS n FROM raw.fetches WHERE source = 'volumes' AND status = 'ok'"
    )
    assert kept["n"].tolist() == [1]


def test_owner_budgets_judge_projects_and_tags_like_teams(teams_loaded):
    _, path, _ = teams_loaded
    spend = Warehouse(path).query(
        "SELECT team_uuid, project_name, amount FROM monthly_spend_by_project "
        "WHERE invoice_period = '2026-12' AND project_name = 'web'"
    )
    budgets = parse_owner_budgets("project:web=0.01, tag:env:nowhere=5")
    thresholds = Thresholds(owner_budgets=budgets)
    found = Warehouse(path).query(OWNER_SPEND, {"owners": list(budgets)})
    verdict = evaluate_owner_budgets(found, thresholds)
    assert {(a.team_uuid, a.level) for a in verdict.alerts} == {
        (team, "fail") for team in spend["team_uuid"]
    }
    assert all("project:web" in a.title for a in verdict.alerts)
    assert verdict.unknown_keys == ["tag:env:nowhere"]
    mtd = dict(zip(found["team_uuid"], found["month_to_date"], strict=True))
    assert mtd == dict(zip(spend["team_uuid"], spend["amount"], strict=True))


@pytest.mark.parametrize(
    "text", ["project=5", "tag:env=5", "owner:x=5", "project:web", "project:web=1.234"]
)
def test_owner_budgets_refuse_what_they_cannot_read(text):
    with pytest.raises(SettingsError, match="OWNER_BUDGETS"):
        parse_owner_budgets(text)


def test_a_bad_list_fails_its_team_only_when_teams_are_normalized_in_one_call(
    tmp_path, materialize, failure_message
):
    """Snapshot lists of a batch of teams are normalized in one call; a bad value sends them
    back one by one, so only the team that sent it fails."""
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer.with_teams(build_teams(3, now=NOW)) as server:
        bad = server.data_for(server.tokens[1])
        bad.inventory.lists["volumes"][0]["tags"] = "env:prod"
        with time_machine.travel(NOW, tick=True):
            result = materialize(
                server, path, "2026-12", assets=source_defs(VOLUMES), raise_on_error=False
            )
        assert not result.success
        assert bad.team["name"] in failure_message(result)
        loaded = dict(query(path, "SELECT team_uuid, count(*) FROM volumes GROUP BY 1"))
        others = [server.data_for(t) for t in server.tokens if t != server.tokens[1]]
        assert loaded == {d.team["uuid"]: len(d.inventory.lists["volumes"]) for d in others}
