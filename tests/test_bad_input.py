"""Bad input from the API: the month fails naming invoice, line and field, and loses nothing."""

import pytest

from pipeline.sandbox import Fault
from pipeline.settings import Settings, SettingsError
from pipeline.sources.invoices import INVOICE_PATH
from pipeline.warehouse.publish import working_file

MONTH = "2024-03"


@pytest.fixture
def serve_with_item_change(sandbox, invoice_of, page_body):
    """`serve_with_item_change(line, **changes)`: serve MONTH's invoice with item `line`
    (1-based) altered, a field set to `...` removed; other pages unchanged. Returns its uuid."""

    def serve(line: int, **changes) -> str:
        uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
        page = page_body(sandbox, uuid, 1)
        item = dict(page["invoice_items"][line - 1])
        for field, value in changes.items():
            if value is ...:
                item.pop(field, None)
            else:
                item[field] = value
        page["invoice_items"][line - 1] = item
        sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", Fault("json", body=page))
        return uuid

    return serve


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("amount", "12,34", "is not a decimal string"),
        ("amount", "N/A", "is not a decimal string"),
        ("amount", "", "is missing"),
        ("amount", ..., "is missing"),
        ("amount", 12.34, "is not a string"),
        ("start_time", "2024-02-30T99:00:00Z", "is not an ISO 8601 timestamp"),
        ("description", {"nested": True}, "is not a string"),
        ("duration", "-744", "is negative"),
    ],
)
def test_unreadable_value_fails_the_month_and_keeps_everything(
    sandbox,
    warehouse_path,
    field,
    value,
    says,
    serve_with_item_change,
    rows,
    failure_message,
    load_month,
    month_rows,
):
    assert load_month(sandbox, warehouse_path, MONTH).success
    before = month_rows(warehouse_path, MONTH)
    uuid = serve_with_item_change(7, **{field: value})
    result = load_month(sandbox, warehouse_path, MONTH)
    assert not result.success
    message = failure_message(result)
    assert f"invoice {uuid} ({MONTH}), line 7, field '{field}'" in message
    assert says in message
    assert month_rows(warehouse_path, MONTH) == before
    # The payload as received is in raw, so the failure can be inspected and replayed.
    (kept,) = rows(
        working_file(warehouse_path),
        "SELECT count(*) FROM raw.pages WHERE endpoint = 'invoice_items' AND request_key = ? "
        "AND page = 1",
        [uuid],
    )[0]
    assert kept == 2


def test_unknown_duration_unit_loads_with_null_hours_and_a_warning_check(
    sandbox, warehouse_path, serve_with_item_change, rows, load_month
):
    serve_with_item_change(3, duration_unit="Fortnights", duration="2")
    result = load_month(sandbox, warehouse_path, MONTH)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["durations_in_known_units"].passed
    assert checks["durations_in_known_units"].severity.value == "WARN"
    assert rows(
        warehouse_path,
        "SELECT duration, duration_hours FROM invoice_items WHERE line_number = 3",
    ) == [(2, None)]


def test_a_field_the_spec_does_not_know_is_kept_in_raw_and_loads(
    sandbox, warehouse_path, serve_with_item_change, rows, load_month
):
    serve_with_item_change(1, carbon_grams="12")
    result = load_month(sandbox, warehouse_path, MONTH)
    assert result.success
    (body,) = rows(
        working_file(warehouse_path),
        "SELECT body FROM raw.pages WHERE endpoint = 'invoice_items' AND page = 1",
    )[0]
    assert '"carbon_grams"' in body


def test_an_empty_invoice_loads_as_zero_items(sandbox, warehouse_path, materialize, rows):
    result = materialize(sandbox, warehouse_path, "2023-04")
    assert result.success
    assert rows(warehouse_path, "SELECT amount, items_total FROM invoices") == [(0, 0)]
    assert rows(warehouse_path, "SELECT count(*) FROM invoice_items") == [(0,)]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"INVOICE_START_PERIOD": "2024-13"}, "INVOICE_START_PERIOD"),
        ({"INVOICE_START_PERIOD": "../x"}, "INVOICE_START_PERIOD"),
        ({"DIGITALOCEAN_API_URL": "http://billing.example.com"}, "DIGITALOCEAN_API_URL"),
        ({"DIGITALOCEAN_API_URL": "https://u:p@api.example.com"}, "DIGITALOCEAN_API_URL"),
        ({"WAREHOUSE_PATH": "data/\x00.duckdb"}, "WAREHOUSE_PATH"),
    ],
)
def test_settings_are_validated_before_anything_runs(env, names):
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)
