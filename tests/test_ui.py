"""The Dagster UI as a person uses it: `make dev`'s webserver and daemon, driven in Chromium.

Runs when Debian's Chromium is at /usr/bin/chromium (`.ci/run` installs it); skipped otherwise.
Screenshots go to test-output/ui/ (or $TEST_OUTPUT_DIR/ui/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pipeline.sources import SOURCES

REPO = Path(__file__).resolve().parents[1]
BACKFILL_MONTHS = ["2024-01", "2024-02", "2024-03"]
# Every asset the source declarations make: a raw asset where a source has one, and its tables.
ASSETS = [
    name
    for source in SOURCES
    for name in ([source.raw_asset] if source.raw_asset else []) + source.table_names
]
# The inventory's tables: unpartitioned (a snapshot of now); the others are by month.
INVENTORY_ASSETS = [name for source in SOURCES if source.snapshot for name in source.table_names]
MONTH_ASSETS = [name for name in ASSETS if name not in INVENTORY_ASSETS]
ITEM_CHECKS = [
    "durations_in_known_units",
    "items_in_their_invoice_period",
    "items_match_meta_total",
    "items_sum_to_invoice_amount",
    "unique_invoice_lines",
]
LOCATION = "do_billing"  # code_location_name in pyproject.toml ([tool.dg.project])
# name → (cron, how the UI writes it)
SCHEDULES = {
    "closed_month_schedule": ("0 6 4 * *", "At 06:00 AM UTC, on day 4 of the month"),
    "preview_refresh_schedule": ("0 7 * * *", "At 07:00 AM UTC"),
    "freshness_schedule": ("0 9 * * *", "At 09:00 AM UTC"),
}
playwright_sync = pytest.importorskip("playwright.sync_api")
# The UI loads asset status and partitions after the page: allow for a slow first load.
playwright_sync.expect.set_options(timeout=30_000)
pytestmark = pytest.mark.browser  # skipped without Chromium (the `browser` fixture)


@dataclass
class DagsterUI:
    url: str
    home: Path
    warehouse: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.load(resp)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]


def wait_for(what: str, probe, timeout: float, log: Path | None = None):
    """Poll `probe` until it returns something truthy; fail naming `what` (with the log's tail)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (OSError, AssertionError, KeyError) as exc:
            last = exc
        time.sleep(1.0)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{tail}")


@pytest.fixture(scope="module")
def output_dir() -> Path:
    root = Path(os.environ.get("TEST_OUTPUT_DIR", REPO / "test-output"))
    path = root / "ui"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def dagster_ui(
    tmp_path_factory: pytest.TempPathFactory, output_dir: Path, port, make_process
) -> Iterator[DagsterUI]:
    """`make dev` on a free loopback port, with its own DAGSTER_HOME and warehouse file."""
    home = tmp_path_factory.mktemp("dagster-home")
    # The repo's dagster.yaml, with its state directories moved into this temporary home.
    config = (REPO / "dagster.yaml").read_text().replace("data/dagster", str(home / "state"))
    (home / "dagster.yaml").write_text(config)
    free = port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITALOCEAN_")}
    # No token: the sandbox's sample data goes to SANDBOX_WAREHOUSE_PATH, kept in the home.
    env.update(
        SANDBOX_WAREHOUSE_PATH=str(home / "warehouse.duckdb"),
        WAREHOUSE_PATH=str(home / "real.duckdb"),
        INVOICE_START_PERIOD="2023-01",
    )
    log = output_dir / "dagster-dev.log"
    with make_process(["dev", f"DEV_PORT={free}", f"DAGSTER_HOME={home}"], env, log):
        ui = DagsterUI(f"http://127.0.0.1:{free}", home, home / "warehouse.duckdb", log)
        wait_for("the webserver", lambda: _get(f"{ui.url}/server_info"), 180, log)
        wait_for("the code location to load", lambda: _location_loaded(ui), 180, log)
        # `make dev` is `dg dev`: Dagster's current CLI, with no supersession notice.
        assert "SupersessionWarning" not in log.read_text()
        # Dagster greets a new instance with a newsletter dialog; a person would click it away.
        ui.graphql("mutation { setNuxSeen }")
        yield ui


def _get(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status == 200


def _location_loaded(ui: DagsterUI) -> bool:
    data = ui.graphql(
        """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
             locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    )
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        error = entry["locationOrLoadError"]
        if error and error["__typename"] == "PythonError":
            pytest.fail(f"code location {entry['name']} failed to load: {error['message']}")
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


@pytest.fixture
def page(browser, dagster_ui: DagsterUI):
    # Tall enough that the graph draws every asset (a column of them) whole: nodes off screen
    # are not rendered, so their names could not be found.
    context = browser.new_context(viewport={"width": 1600, "height": 3200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def test_asset_graph_shows_every_asset(page, dagster_ui: DagsterUI, output_dir: Path) -> None:
    page.goto(f"{dagster_ui.url}/asset-groups")
    graph = page.locator("foreignObject")  # the graph's nodes, not the list beside it
    page.wait_for_load_state("networkidle")
    page.screenshot(path=output_dir / "asset-graph.png")
    for name in ASSETS:
        playwright_sync.expect(graph.get_by_text(name, exact=True)).to_be_visible()
    today = datetime.now(UTC)
    months = (today.year - 2023) * 12 + today.month  # 2023-01 through the open month
    playwright_sync.expect(graph.get_by_text(f"{months} partitions").first).to_be_visible()
    # Only the month assets have partitions: the inventory is a snapshot of now, not months.
    playwright_sync.expect(graph.get_by_text(f"{months} partitions")).to_have_count(
        len(MONTH_ASSETS)
    )


def test_both_schedules_listed_with_their_cron(
    page, dagster_ui: DagsterUI, output_dir: Path
) -> None:
    data = dagster_ui.graphql(
        """{ repositoriesOrError { ... on RepositoryConnection { nodes {
             schedules { name cronSchedule executionTimezone } } } } }"""
    )
    schedules = {
        s["name"]: (s["cronSchedule"], s["executionTimezone"])
        for repo in data["repositoriesOrError"]["nodes"]
        for s in repo["schedules"]
    }
    assert schedules == {name: (cron, "UTC") for name, (cron, _) in SCHEDULES.items()}
    page.goto(f"{dagster_ui.url}/automation")
    for name, (_, words) in SCHEDULES.items():
        playwright_sync.expect(page.get_by_text(name, exact=True)).to_be_visible()
        playwright_sync.expect(page.get_by_text(words, exact=True)).to_be_visible()
    page.screenshot(path=output_dir / "schedules.png")
    for name, (cron, _) in SCHEDULES.items():
        page.goto(f"{dagster_ui.url}/locations/{LOCATION}/schedules/{name}")
        playwright_sync.expect(page.get_by_text(f"({cron})", exact=True)).to_be_visible()


BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status partitionNames runs(limit: 10) { runId status assetSelection { path } }
    }
    ... on PythonError { message }
  }
}
"""

RUN_LOGS = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on MessageEvent { message } } }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 10) { partition runOrError { ... on Run { runId } } }
    }
  }
}
"""

LATEST_METADATA = """
query Metadata($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
        }
      }
    }
  }
}
"""


def test_three_month_backfill_from_the_ui_succeeds_and_lands(
    page, dagster_ui: DagsterUI, output_dir: Path
) -> None:
    # As a person does it: asset graph → Materialize all… → a custom range → Launch backfill.
    page.goto(f"{dagster_ui.url}/asset-groups")
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog")
    playwright_sync.expect(dialog).to_contain_text(
        f"Launch runs to materialize {len(ASSETS)} assets"
    )
    selection = dialog.get_by_placeholder("ex: ")
    selection.fill(f"[{BACKFILL_MONTHS[0]}...{BACKFILL_MONTHS[-1]}]")
    selection.press("Enter")
    playwright_sync.expect(dialog.get_by_text("3 partitions", exact=True)).to_be_visible()
    page.screenshot(path=output_dir / "backfill-dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    playwright_sync.expect(toast).to_be_visible()
    backfill_id = toast.inner_text().split()[-1]

    def finished() -> dict | None:
        answer = dagster_ui.graphql(BACKFILL_STATUS, {"id": backfill_id})
        backfill = answer["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        return None if backfill["status"] in ("REQUESTED", "CANCELING", "FAILING") else backfill

    backfill = wait_for("the backfill to finish", finished, 300, dagster_ui.log)
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["partitionNames"] == BACKFILL_MONTHS
    # The single-run backfill policy: three months, one run, one pass over the invoice list;
    # the inventory, unpartitioned (a snapshot of now, not a month), is read once in a run of
    # its own, queued behind the other on the warehouse pool.
    runs = {
        frozenset(key["path"][0] for key in run["assetSelection"]): run for run in backfill["runs"]
    }
    assert set(runs) == {frozenset(INVENTORY_ASSETS), frozenset(MONTH_ASSETS)}, runs
    assert [run["status"] for run in backfill["runs"]] == ["SUCCESS", "SUCCESS"]
    for name in INVENTORY_ASSETS:  # one snapshot, of no month: not three months filled
        snapshot = dagster_ui.graphql(MATERIALIZATIONS, {"path": [name]})["assetOrError"]
        assert snapshot["assetMaterializations"] == [
            {"partition": None, "runOrError": {"runId": runs[frozenset(INVENTORY_ASSETS)]["runId"]}}
        ], name

    page.goto(f"{dagster_ui.url}/runs/b/{backfill_id}?tab=runs")
    playwright_sync.expect(page.get_by_text("Succeeded", exact=True)).to_be_visible()
    playwright_sync.expect(page.get_by_text("2024-01...2024-03")).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=output_dir / "backfill.png")

    # Progress a person can follow: the run log counts invoices and pages out of the total.
    run_id = runs[frozenset(MONTH_ASSETS)]["runId"]
    events = dagster_ui.graphql(RUN_LOGS, {"runId": run_id})["logsForRun"]["events"]
    messages = [e.get("message") or "" for e in events]
    assert any("SANDBOX" in m for m in messages), "the run log must say the sandbox is in use"
    assert any("3 invoice(s) in 2024-01…2024-03" in m for m in messages), messages
    assert "summaries: 3/3 fetched" in messages
    assert any(re.search(r"3/3 invoices complete, (\d+)/\1 pages fetched", m) for m in messages)
    assert any(
        re.search(r"loaded 3 month\(s\) 2024-01…2024-03: 3 invoices, \d+ items", m)
        for m in messages
    )
    page.goto(f"{dagster_ui.url}/runs/{run_id}")
    levels = page.get_by_role("button", name="Levels")
    levels.click()
    page.get_by_text("event", exact=True).click()  # hide Dagster's events: our messages remain
    page.keyboard.press("Escape")
    playwright_sync.expect(page.get_by_text("debug", exact=True)).to_be_hidden()
    playwright_sync.expect(page.get_by_text(re.compile(r"3/3 invoices complete"))).to_be_visible()
    sandbox_notice = page.get_by_text(re.compile(r"using the built-in SANDBOX API"))
    playwright_sync.expect(sandbox_notice.first).to_be_visible()
    page.screenshot(path=output_dir / "backfill-run-log.png")

    with duckdb.connect(str(dagster_ui.warehouse), read_only=True) as con:
        invoices = con.execute(
            "SELECT invoice_period, count(*), sum(amount) FROM invoices GROUP BY ALL ORDER BY 1"
        ).fetchall()
        items = con.execute(
            "SELECT invoice_period, count(*), sum(amount) FROM invoice_items "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
        problems = con.execute(
            "SELECT count(*) FROM invoice_reconciliation WHERE problem IS NOT NULL"
        ).fetchone()
    assert [(m, n) for m, n, _ in invoices] == [(m, 1) for m in BACKFILL_MONTHS]
    assert [m for m, _, _ in items] == BACKFILL_MONTHS and all(n > 0 for _, n, _ in items)
    assert problems == (0,)

    # Where a person sees the checks: the asset's Checks tab, every one succeeded.
    page.goto(f"{dagster_ui.url}/assets/invoice_items?view=checks")
    playwright_sync.expect(page.get_by_text(f"Checks ({len(ITEM_CHECKS)})")).to_be_visible()
    for check in ITEM_CHECKS:
        playwright_sync.expect(page.get_by_text(check, exact=True).first).to_be_visible()
    playwright_sync.expect(page.get_by_text("Succeeded", exact=True)).to_have_count(
        len(ITEM_CHECKS)
    )
    page.screenshot(path=output_dir / "checks.png")

    # Each month's materialization shows that month's row count and amount, not the run's.
    latest = dagster_ui.graphql(LATEST_METADATA, {"path": ["invoice_items"]})
    (event,) = latest["assetOrError"]["assetMaterializations"]
    metadata = {e["label"]: e.get("intValue", e.get("text")) for e in event["metadataEntries"]}
    (month,) = [(n, a) for m, n, a in items if m == event["partition"]]
    assert metadata["dagster/row_count"] == month[0] < sum(n for _, n, _ in items)
    assert metadata["total_amount"] == f"{month[1]:,.2f} USD"
