"""The cost dashboard as a person opens it: `make dashboard` as a process, rendered in Chromium.

After a two-team load from the sandbox the page shows each team's last closed month's invoice
total and no exception; a load run while the page is open succeeds and, on reload, its open
month shows. The screenshot is written to test-output/dashboard.png; `make pictures` copies it
to docs/dashboard.png, the one the README shows.
Runs when Debian's Chromium is at /usr/bin/chromium; skipped otherwise.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pipeline.alerts.rules import money
from pipeline.dashboard.queries import QUERIES
from pipeline.defs.definitions import source_defs
from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.sources import SOURCES

REPO = Path(__file__).resolve().parents[1]
# Outside the tracked tree, so `make test` leaves git clean; `make pictures` copies it to docs/.
SCREENSHOT = Path(os.environ.get("TEST_OUTPUT_DIR", REPO / "test-output")) / "dashboard.png"
OPEN = month_of(datetime.now(UTC))
CLOSED = previous_month(OPEN)
FIRST = previous_month(previous_month(CLOSED))

pytestmark = pytest.mark.browser  # skipped without Chromium (the `browser` fixture)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def dashboard(tmp_path: Path, port, make_process) -> Iterator[tuple[str, Path]]:
    """`make dashboard DASHBOARD_PORT=<free port>` reading a warehouse in tmp_path."""
    path = tmp_path / "warehouse.duckdb"
    free = port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITALOCEAN_")}
    # No token: the dashboard reads the sandbox's own file (SANDBOX_WAREHOUSE_PATH).
    env["SANDBOX_WAREHOUSE_PATH"] = str(path)
    env["WAREHOUSE_PATH"] = str(tmp_path / "real.duckdb")
    log = tmp_path / "dashboard.log"
    with make_process(["dashboard", f"DASHBOARD_PORT={free}"], env, log) as proc:
        url = f"http://127.0.0.1:{free}"
        deadline = time.monotonic() + 120
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, path


def figures(path: Path, name: str, teams: list[str]) -> dict[str, tuple]:
    """The named query on the file, as an analyst runs it: team uuid → row."""
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0]: row for row in con.execute(QUERIES[name], {"teams": teams}).fetchall()}


def rendered(page, url: str) -> str:
    """The page after Streamlit ran the script to its end: its text, with no exception shown."""
    page.goto(url)
    page.get_by_text("Payments against invoices").wait_for(timeout=90_000)
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    assert page.locator("[data-testid='stException']").count() == 0
    text = page.inner_text("body")
    assert "Traceback" not in text
    return text


def test_the_dashboard_renders_every_team_and_a_load_runs_while_it_is_open(
    browser, dashboard, materialize
):
    url, path = dashboard
    assets = [a for s in SOURCES for a in source_defs(s)]
    with SandboxServer.with_teams(build_teams(2)) as server:
        teams = [server.data_for(t).team for t in server.tokens]
        uuids = [t["uuid"] for t in teams]
        page = browser.new_page(viewport={"width": 1440, "height": 3400})
        # Before any load: how to load it, not an error.
        assert "No loaded data yet" in rendered_empty(page, url)

        assert materialize(server, path, FIRST, CLOSED, assets=assets).success
        text = rendered(page, url)
        closed = figures(path, "last_closed_month", uuids)
        for team in teams:
            assert team["name"] in text
            assert money(closed[team["uuid"]][2]) in text

        # The page stays open (its session and websocket live) while a load runs and publishes.
        result = materialize(server, path, FIRST, OPEN, assets=assets)
        assert result.success
        text = rendered(page, url)
        to_date = figures(path, "open_month_to_date", uuids)
        for team in teams:
            assert f"{team['name']} · {OPEN} to date" in text
            assert money(to_date[team["uuid"]][2]) in text
            assert money(closed[team["uuid"]][2]) in text
        page.wait_for_timeout(1500)  # the charts draw after the script ends
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        page.close()


def rendered_empty(page, url: str) -> str:
    page.goto(url)
    page.get_by_text("No loaded data yet").wait_for(timeout=90_000)
    assert page.locator("[data-testid='stException']").count() == 0
    return page.inner_text("body")


def test_what_to_cut_shows_each_teams_idle_total_and_share_in_the_browser(
    browser, dashboard, materialize
):
    """After a load, the What to cut panel shows, per team, what its idle resources cost in the
    last closed month, their share of that invoice and the month so far: the SQL's figures."""
    url, path = dashboard
    assets = [a for s in SOURCES for a in source_defs(s)]
    with SandboxServer.with_teams(build_teams(2)) as server:
        teams = [server.data_for(t).team for t in server.tokens]
        assert materialize(server, path, CLOSED, OPEN, assets=assets).success
    uuids = [t["uuid"] for t in teams]
    with duckdb.connect(str(path), read_only=True) as con:
        bound = {
            "teams": uuids,
            "project": None,
            "tag_key": None,
            "tag_value": None,
            "max_age_days": 90,
        }
        totals = {r[0]: r for r in con.execute(QUERIES["idle_total"], bound).fetchall()}
    closed = figures(path, "last_closed_month", uuids)
    page = browser.new_page(viewport={"width": 1440, "height": 3400})
    text = rendered(page, url)
    page.close()
    assert "What to cut" in text
    for team in teams:
        _, name, period, resources, idle, so_far = totals[team["uuid"]]
        assert period == CLOSED and resources > 0 and idle > 0
        assert f"{name} · idle in {CLOSED}" in text
        assert money(idle) in text and money(so_far) in text
        share = f"{100 * idle / closed[team['uuid']][2]:.1f} %"
        assert share in text
