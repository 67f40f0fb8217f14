"""Soak: a multi-year backfill against a sandbox that fails ~5% of requests ends exact.

Not part of `make test`; run with `.venv/bin/python -m pytest -m soak`.
"""

from decimal import Decimal

import pytest

from pipeline.defs.partitions import monthly_partitions
from pipeline.sandbox import SandboxServer


@pytest.mark.soak
def test_years_of_backfill_with_faults_end_with_exact_totals(warehouse_path, materialize, rows):
    keys = monthly_partitions().get_partition_keys()
    with SandboxServer(error_rate=0.05, seed=11, latency=0.005) as server:
        result = materialize(server, warehouse_path, keys[0], keys[-1])
        failures = [r for r in server.requests if r["status"] not in (200,)]
    assert result.success
    assert failures, "the soak should have met faults"
    invoices = [i for i in server.data.all_invoices() if i["invoice_period"] in keys]
    expected = sum(
        (Decimal(it["amount"]) for i in invoices for it in server.data.items[i["invoice_uuid"]]),
        Decimal(0),
    )
    assert rows(warehouse_path, "SELECT sum(amount), count(*) FROM invoice_items") == [
        (expected, sum(len(server.data.items[i["invoice_uuid"]]) for i in invoices))
    ]
