"""`make run`'s closing summary: the checks that failed or warn, and where the open month stands
for each team and in total."""

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import build_teams


@pytest.fixture
def make_run(run_against):
    """`make_run(home, server, start)`: `python -m pipeline.cli.run` against `server` (all its
    tokens), from `start`."""

    def run(home: Path, server: SandboxServer, start: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli.run"],
            cwd=home,
            env=run_against(home, server, INVOICE_START_PERIOD=start),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def test_a_check_that_warns_is_named_in_the_summary_with_its_finding(tmp_path, make_run):
    """One invoice's items add up to a cent more than the invoice: the warn-only check
    `items_sum_to_invoice_amount` passes the run and shows in the summary, with the invoice."""
    now = datetime.now(UTC)
    closed = previous_month(month_of(now))
    with SandboxServer(now=now) as server:
        invoice = server.data.invoice_for(closed)
        item = server.data.items[invoice["invoice_uuid"]][0]
        item["amount"] = str(Decimal(item["amount"]) + Decimal("0.01"))
        done = make_run(tmp_path, server, closed)
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    prefix = "Check invoice_items:items_sum_to_invoice_amount warns: "
    (check,) = [line for line in lines if line.startswith(prefix)]
    # The summaries' reconciliation (a blocking check of the same sums) names it too.
    (reconcile,) = [line for line in lines if line.startswith("Check invoice_summaries:")]
    assert reconcile.startswith("Check invoice_summaries:invoices_reconcile failed: 1 row(s)")
    assert "items_difference=0.01" in reconcile
    assert check.startswith(
        f"{prefix}1 row(s), the first: "
        f"invoice_uuid={invoice['invoice_uuid']}, invoice_period={closed}, "
    )
    assert check.endswith("difference=0.01")
    assert lines[-2] == "Alerts: none (budget, cost spikes, new SKUs)"


def test_the_open_month_is_shown_per_team_and_in_total(tmp_path, make_run):
    now = datetime.now(UTC)
    teams = build_teams(2, now=now)
    with SandboxServer.with_teams(teams, now=now) as server:
        done = make_run(tmp_path, server, month_of(now))
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    at = lines.index(f"Open month {month_of(now)}:")
    usage = {
        data.team["name"]: Decimal(data.balance["month_to_date_usage"]) for data in teams.values()
    }
    preview = {data.team["name"]: Decimal(data.preview["amount"]) for data in teams.values()}
    assert len(set(usage.values())) == 2  # the two teams' figures differ
    for line, name in zip(lines[at + 1 : at + 3], sorted(usage), strict=True):
        assert line.startswith(f"  {name} ")
        assert f" {preview[name]} USD so far (invoice preview);" in line
        assert f"; month-to-date usage {usage[name]} USD (balance of " in line
    total = lines[at + 3]
    assert total.startswith(f"  all 2 teams: {sum(preview.values())} USD so far (invoice preview)")
    assert f"; month-to-date usage {sum(usage.values())} USD (balance of " in total
