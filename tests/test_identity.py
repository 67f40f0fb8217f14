"""Identity fields (an invoice's uuid and period) decide which month a swap replaces: a listed
invoice with an impossible period or uuid fails its team, naming the invoice and the value, and
no closed month is ever replaced by nothing."""

import pytest

from pipeline.defs.definitions import source_defs
from pipeline.sources import INVOICES, SUMMARIES
from pipeline.warehouse.publish import working_file

FIRST, MONTH, LAST = "2024-02", "2024-03", "2024-04"
ASSETS = [*source_defs(INVOICES), *source_defs(SUMMARIES)]
TABLES = ("invoices", "invoice_items", "invoice_summaries")


@pytest.fixture
def loaded(sandbox, warehouse_path, materialize, everything):
    """Three closed months loaded, and every row of every invoice table as it then stood."""
    assert materialize(sandbox, warehouse_path, FIRST, LAST, assets=ASSETS).success
    before = everything(warehouse_path)
    assert {row[2] for row in before["invoices"]} == {FIRST, MONTH, LAST}
    return before


@pytest.fixture(scope="session")
def everything(rows):
    """`everything(path)`: every row of the invoice tables, every column, in a fixed order."""

    def read(path):
        return {
            table: rows(path, f"SELECT * FROM {table} ORDER BY ALL")  # noqa: S608
            for table in TABLES
        }

    return read


def test_an_impossible_period_fails_naming_the_invoice_and_keeps_every_month(
    sandbox, warehouse_path, materialize, failure_message, invoice_of, loaded, everything
):
    invoice = invoice_of(sandbox, MONTH)
    invoice["invoice_period"] = "2026-13"
    result = materialize(sandbox, warehouse_path, FIRST, LAST, assets=ASSETS, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert (
        f"invoice '{invoice['invoice_uuid']}', field 'invoice_period': '2026-13' is not a "
        "YYYY-MM month" in message
    )
    # Every month as it was, value for value, in the analysts' file and the loader's own.
    assert everything(warehouse_path) == loaded
    assert everything(working_file(warehouse_path)) == loaded


@pytest.mark.parametrize("value", ["../../account", "", None, 7])
def test_a_listed_uuid_that_is_not_a_uuid_fails_before_any_request_uses_it(
    sandbox, warehouse_path, materialize, failure_message, invoice_of, loaded, everything, value
):
    invoice_of(sandbox, MONTH)["invoice_uuid"] = value
    result = materialize(sandbox, warehouse_path, FIRST, LAST, assets=ASSETS, raise_on_error=False)
    assert not result.success
    assert f"field 'invoice_uuid': {value!r} is not a uuid" in failure_message(result)
    assert everything(warehouse_path) == loaded


def test_a_closed_month_is_never_swapped_for_nothing(
    sandbox, warehouse_path, materialize, failure_message, invoice_of, loaded, everything
):
    # The list silently stops listing a closed month's invoice: the month would be emptied.
    sandbox.data.invoices.remove(invoice_of(sandbox, MONTH))
    result = materialize(sandbox, warehouse_path, FIRST, LAST, assets=ASSETS, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert f"{MONTH}: 1 row(s) held, none loaded" in message
    assert "Nothing was written; the previous rows stay" in message
    assert everything(warehouse_path) == loaded
