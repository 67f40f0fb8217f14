"""Normalization: exact money, NULL rules, UTC timestamps, errors that name invoice/line/field."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sources.fields import InvalidPayloadError
from pipeline.sources.invoice_items import ITEM_FIELDS, normalize_items
from pipeline.sources.invoices import normalize_invoices

LOADED = datetime(2026, 1, 1, tzinfo=UTC)


def pages_of(
    items_by_page: list[list[dict]],
    uuid: str = "u-1",
    period: str = "2024-05",
    page_fields: list[dict] | None = None,
):
    """Item pages as the store hands them to the normalizer; `page_fields` adds fields beside
    `invoice_items` in each page's body (such as `meta`)."""
    extra = page_fields or [{} for _ in items_by_page]
    return pd.DataFrame(
        {
            "invoice_uuid": uuid,
            "invoice_period": period,
            "status": "final",
            "page": range(1, len(items_by_page) + 1),
            "body": [
                json.dumps({"invoice_items": items, **fields})
                for items, fields in zip(items_by_page, extra, strict=True)
            ],
        }
    )


def item(**fields):
    base = {
        "product": "Droplets",
        "amount": "12.34",
        "duration": "744",
        "duration_unit": "Hours",
        "start_time": "2024-05-01T00:00:00Z",
        "end_time": "2024-06-01T00:00:00Z",
    }
    return {**base, **fields}


def test_items_are_typed_and_numbered_across_pages():
    frame, unknown = normalize_items(
        pages_of(
            [
                [item(), item(amount="-6.78")],
                [item(amount="0.00", duration_unit="Minutes", duration="90")],
            ]
        ),
        LOADED,
    )
    assert frame["line_number"].tolist() == [1, 2, 3]
    assert [Decimal(str(v)) for v in frame["amount"]] == [
        Decimal("12.34"),
        Decimal("-6.78"),
        Decimal("0.00"),
    ]
    assert frame["duration_hours"].tolist() == [744.0, 744.0, 1.5]
    assert str(frame["start_time"].dt.tz) == "UTC"
    assert unknown == []


def test_pages_are_ordered_by_page_number_not_arrival():
    pages = pages_of([[item(description="first")], [item(description="second")]])
    frame, _ = normalize_items(pages.iloc[::-1], LOADED)
    assert frame["description"].tolist() == ["first", "second"]


def test_absent_and_empty_strings_become_null():
    frame, _ = normalize_items(
        pages_of([[item(project_name="", resource_uuid="  "), item()]]), LOADED
    )
    assert frame["project_name"].isna().all()
    assert frame["resource_uuid"].isna().all()
    assert frame["group_description"].isna().all()


def test_unknown_unit_gives_null_hours_and_unknown_fields_are_reported():
    frame, unknown = normalize_items(
        pages_of([[item(duration_unit="Fortnights", brand_new="x")]]), LOADED
    )
    assert frame["duration_hours"].isna().all()
    assert unknown == ["brand_new"]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("amount", "12,34", "'amount': '12,34' is not a decimal"),
        ("amount", "N/A", "'amount': 'N/A'"),
        ("amount", "", "'amount': <NA> is missing"),
        ("amount", 12.34, "'amount': 12.34 is not a string"),
        ("amount", "1.234", "'amount': '1.234' is not a decimal"),
        ("start_time", "yesterday", "'start_time': 'yesterday' is not an ISO 8601"),
        ("product", ["x"], "'product': ['x'] is not a string"),
    ],
)
def test_bad_values_name_invoice_line_and_field(field, value, fragment):
    with pytest.raises(InvalidPayloadError) as err:
        normalize_items(pages_of([[item(), item(**{field: value})]], uuid="inv-9"), LOADED)
    message = str(err.value)
    assert "invoice inv-9 (2024-05), line 2" in message
    assert fragment in message


def test_empty_invoice_normalizes_to_no_rows():
    frame, _ = normalize_items(pages_of([[]]), LOADED)
    assert len(frame) == 0


def test_invoices_from_list_entries():
    entries = pd.DataFrame(
        {
            "status": ["final", "preview"],
            "items_total": [3, 0],
            "entry": [
                json.dumps(
                    {
                        "invoice_uuid": "a",
                        "invoice_id": "1",
                        "amount": "10.00",
                        "invoice_period": "2024-05",
                    }
                ),
                json.dumps(
                    {
                        "invoice_uuid": "b",
                        "amount": "-1.50",
                        "invoice_period": "2024-06",
                        "updated_at": "2024-06-23T06:31:50Z",
                    }
                ),
            ],
        }
    )
    frame = normalize_invoices(entries, LOADED)
    assert frame["invoice_id"].isna().tolist() == [False, True]
    assert [str(v) for v in frame["amount"]] == ["10.00", "-1.50"]
    assert frame["updated_at"].isna().tolist() == [True, False]


def test_invoice_with_bad_period_is_rejected():
    entries = pd.DataFrame(
        {
            "status": ["final"],
            "items_total": [0],
            "entry": [
                json.dumps({"invoice_uuid": "a", "amount": "1.00", "invoice_period": "2024-13"})
            ],
        }
    )
    with pytest.raises(InvalidPayloadError, match="invoice a .*invoice_period.*2024-13"):
        normalize_invoices(entries, LOADED)


cents = st.integers(min_value=-(10**15), max_value=10**15)


def as_text(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


@settings(max_examples=60, deadline=None)
@given(st.lists(cents, min_size=1, max_size=60))
def test_money_is_exact(amounts):
    """Any amount a DigitalOcean string can carry survives, and sums exactly, with no float."""
    frame, _ = normalize_items(pages_of([[item(amount=as_text(a)) for a in amounts]]), LOADED)
    assert [Decimal(str(v)) for v in frame["amount"]] == [Decimal(as_text(a)) for a in amounts]
    total = sum((Decimal(str(v)) for v in frame["amount"]), Decimal(0))
    assert total == Decimal(sum(amounts)) / 100


def three_pages(new_field: object = "x", totals: tuple = (3, 3, 3)) -> pd.DataFrame:
    """Three pages (two items, one, none) with an unknown item field and a `meta.total` each."""
    return pages_of(
        [[item(), item(project_name="Café ☕", new_field=new_field)], [item(amount="-1.05")], []],
        page_fields=[{"meta": {"total": total}} for total in totals],
    )


def arrow_reads_every_item_field_as_text(pages: pd.DataFrame) -> bool:
    """What the fast path needs, asked of Arrow's JSON reader itself: the pages read at once,
    the spec's item fields as text and every other field inferred, and all of them text."""
    known = pa.struct([(field, pa.string()) for field in sorted(ITEM_FIELDS)])
    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([("invoice_items", pa.list_(known))]),
        unexpected_field_behavior="infer",
    )
    lines = "\n".join(pages["body"]).encode()
    try:
        table = pa_json.read_json(pa.BufferReader(lines), parse_options=options)
    except pa.ArrowInvalid:
        return False
    fields = table.schema.field("invoice_items").type.value_type
    return all(pa.types.is_string(f.type) or pa.types.is_null(f.type) for f in fields)


@pytest.mark.parametrize(
    "row_path_pages",
    [
        # A page field whose JSON type changes from page to page: no schema fits every page.
        pytest.param(three_pages(totals=(3, "3", 3)), id="page-field-changes-type"),
        # A field the spec does not know, holding a number: it would not be read as text.
        pytest.param(three_pages(new_field=3), id="unknown-field-is-a-number"),
    ],
)
def test_arrow_fast_path_matches_the_row_path(row_path_pages):
    """Both parsers give identical rows; the fast one is only a speed-up.

    The same items are sent twice: as pages Arrow's reader takes whole (the fast path), and with
    one change that makes normalize_items read them row by row instead (the fallback)."""
    fast_path_pages = three_pages()
    assert arrow_reads_every_item_field_as_text(fast_path_pages)
    assert not arrow_reads_every_item_field_as_text(row_path_pages)
    fast, fast_unknown = normalize_items(fast_path_pages, LOADED)
    slow, slow_unknown = normalize_items(row_path_pages, LOADED)
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    assert fast_unknown == slow_unknown == ["new_field"]
    assert fast["line_number"].tolist() == [1, 2, 3]
    assert fast["project_name"].isna().tolist() == [True, False, True]
    assert fast["project_name"].iloc[1] == "Café ☕"


def test_many_pages_are_numbered_per_invoice_across_the_readers_chunks():
    """Over 32 MiB of pages (read a few blocks at a time): every invoice's lines run 1..n in
    page order, amounts stay exact, pretty-printed pages read like compact ones."""
    long = "x" * 2000
    pages = pd.concat(
        [
            pages_of(
                [
                    [item(description=long, amount=f"{p}.{k:02d}") for k in range(100)]
                    for p in range(n_pages)
                ],
                uuid=uuid,
            )
            for uuid, n_pages in (("inv-a", 120), ("inv-b", 90))
        ],
        ignore_index=True,
    )
    pages.loc[:2, "body"] = [json.dumps(json.loads(b), indent=2) for b in pages["body"][:3]]
    frame, _ = normalize_items(pages.sample(frac=1, random_state=1), LOADED)
    assert len(frame) == 21_000
    for uuid, n in (("inv-a", 12_000), ("inv-b", 9_000)):
        lines = frame.loc[frame["invoice_uuid"] == uuid, "line_number"]
        assert lines.tolist() == list(range(1, n + 1))
    first_b = frame[frame["invoice_uuid"] == "inv-b"].iloc[250]
    assert Decimal(str(first_b["amount"])) == Decimal("2.50")
    total = sum((Decimal(str(v)) for v in frame["amount"]), Decimal(0))
    assert total == sum(
        Decimal(f"{p}.{k:02d}") for n in (120, 90) for p in range(n) for k in range(100)
    )
