"""Raw API pages → typed DataFrames, vectorized, with money kept exact.

Amounts arrive as strings ("12.34"); they are checked with one regex per column and cast by
Arrow straight to DECIMAL(18,2), never through float. Empty and absent strings both become NULL,
timestamps become UTC. Anything that cannot be read is reported with invoice, line and field.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

MONEY = pa.decimal128(18, 2)
QUANTITY = pa.decimal128(18, 6)
MONEY_PATTERN = r"-?\d{1,16}(?:\.\d{1,2})?"
QUANTITY_PATTERN = r"-?\d{1,12}(?:\.\d{1,6})?"
PERIOD_PATTERN = r"\d{4}-(?:0[1-9]|1[0-2])"

ITEM_TEXT_FIELDS = (
    "product",
    "category",
    "project_name",
    "resource_uuid",
    "resource_id",
    "group_description",
    "description",
    "duration_unit",
)
ITEM_FIELDS = frozenset(ITEM_TEXT_FIELDS + ("amount", "duration", "start_time", "end_time"))
ITEM_COLUMNS = [
    "invoice_uuid",
    "invoice_period",
    "line_number",
    "product",
    "category",
    "project_name",
    "resource_uuid",
    "resource_id",
    "group_description",
    "description",
    "amount",
    "duration",
    "duration_unit",
    "duration_hours",
    "start_time",
    "end_time",
    "status",
    "loaded_at",
]
INVOICE_COLUMNS = [
    "invoice_uuid",
    "invoice_id",
    "invoice_period",
    "amount",
    "status",
    "updated_at",
    "items_total",
    "loaded_at",
]
# Units DigitalOcean reports in `duration_unit`, as hours per unit; others give NULL hours.
HOURS_PER_UNIT = {
    "hour": 1.0,
    "hours": 1.0,
    "hr": 1.0,
    "hrs": 1.0,
    "minute": 1 / 60,
    "minutes": 1 / 60,
    "min": 1 / 60,
    "second": 1 / 3600,
    "seconds": 1 / 3600,
    "sec": 1 / 3600,
    "day": 24.0,
    "days": 24.0,
}
MAX_REPORTED = 20


class InvalidPayloadError(ValueError):
    """Values that cannot be loaded as they are; the raw pages are kept for inspection."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_REPORTED]
        more = len(problems) - len(shown)
        super().__init__(
            f"{len(problems)} value(s) cannot be loaded:\n- "
            + "\n- ".join(shown)
            + (f"\n- … and {more} more" if more else "")
        )


def _where(frame: pd.DataFrame, mask: pd.Series, field: str, what: str) -> list[str]:
    """One message per bad row: which invoice, which line, which field, what value."""
    bad = frame.loc[mask]
    has_line = "line_number" in bad.columns
    return [
        f"invoice {row.invoice_uuid} ({row.invoice_period})"
        + (f", line {row.line_number}" if has_line else "")
        + f", field {field!r}: {value!r} {what}"
        for row, value in zip(
            bad.itertuples(index=False), bad[field].head(MAX_REPORTED * 5), strict=False
        )
    ]


def _text(frame: pd.DataFrame, field: str, problems: list[str]) -> pd.Series:
    """A nullable string column: absent, None and blank strings are NULL; non-strings an error."""
    if field not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    col = frame[field]
    if pd.api.types.infer_dtype(col, skipna=True) not in ("string", "empty"):
        wrong = col.notna() & ~col.map(lambda v: isinstance(v, str))
        problems += _where(frame, wrong, field, "is not a string")
        col = col.where(~wrong)
    col = col.astype("string")
    return col.mask(col.str.strip() == "")


def _decimal(
    frame: pd.DataFrame,
    field: str,
    pattern: str,
    arrow_type: pa.DataType,
    problems: list[str],
    *,
    required: bool,
) -> pd.Series:
    """Exact decimal column from decimal strings; anything else is reported, never rounded."""
    text = _text(frame, field, problems)
    missing = text.isna()
    malformed = ~missing & ~text.str.fullmatch(pattern).fillna(False).astype(bool)
    if required:
        problems += _where(frame.assign(**{field: text}), missing, field, "is missing")
    problems += _where(
        frame.assign(**{field: text}), malformed, field, "is not a decimal string like '12.34'"
    )
    clean = text.where(~malformed)
    values = pa.array(clean.to_numpy(dtype=object, na_value=None), type=pa.string())
    return pd.Series(values.cast(arrow_type), index=frame.index, dtype=pd.ArrowDtype(arrow_type))


def _timestamp(frame: pd.DataFrame, field: str, problems: list[str]) -> pd.Series:
    text = _text(frame, field, problems)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    problems += _where(
        frame.assign(**{field: text}),
        text.notna() & parsed.isna(),
        field,
        "is not an ISO 8601 timestamp",
    )
    return parsed


# Known item fields parse as text; a field the spec does not know is inferred.
_ITEM_PAGE_SCHEMA = pa.schema(
    [("invoice_items", pa.list_(pa.struct([(f, pa.string()) for f in sorted(ITEM_FIELDS)])))]
)


def _items_with_arrow(pages: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray] | None:
    """All pages parsed at once by Arrow's JSON reader (C++, multi-threaded).

    Returns None when a value has the wrong JSON type (a number where text belongs, an item that
    is not an object): the slower path then names each bad value precisely.
    """
    # Raw newlines can only be whitespace in valid JSON, so one page per line is safe.
    lines = b"\n".join(body.replace("\n", " ").encode() for body in pages["body"])
    try:
        table = pa_json.read_json(
            pa.BufferReader(lines),
            parse_options=pa_json.ParseOptions(
                explicit_schema=_ITEM_PAGE_SCHEMA, unexpected_field_behavior="infer"
            ),
        )
    except pa.ArrowInvalid:
        return None
    column = table.column("invoice_items")
    flat = pc.list_flatten(column)
    if any(not pa.types.is_string(f.type) and not pa.types.is_null(f.type) for f in flat.type):
        return None
    counts = pc.fill_null(pc.list_value_length(column), 0).to_numpy()
    frame = pd.DataFrame(
        {
            f.name: pd.Series(pc.struct_field(flat, f.name), dtype=pd.ArrowDtype(pa.string()))
            for f in flat.type
        }
    )
    return frame, counts


def _pages_to_items(pages: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """Concatenate item pages in page order into one frame of raw item fields."""
    pages = pages.sort_values(["invoice_uuid", "page"], kind="stable")
    fast = _items_with_arrow(pages) if len(pages) else None
    if fast is not None:
        items, counts = fast
        return _with_invoice_columns(items, pages, counts)
    records: list[dict[str, Any]] = []
    counts: list[int] = []
    for uuid, period, page, body in zip(
        pages["invoice_uuid"], pages["invoice_period"], pages["page"], pages["body"], strict=True
    ):
        items = json.loads(body).get("invoice_items") or []
        if not all(isinstance(item, dict) for item in items):
            problems.append(f"invoice {uuid} ({period}), page {page}: an item is not an object")
            items = [item if isinstance(item, dict) else {} for item in items]
        records.extend(items)
        counts.append(len(items))
    items = pd.DataFrame.from_records(records) if records else pd.DataFrame(index=range(0))
    return _with_invoice_columns(items, pages, counts)


def _with_invoice_columns(items: pd.DataFrame, pages: pd.DataFrame, counts: Any) -> pd.DataFrame:
    """Each item gets its invoice's uuid, period and status, and its line number."""
    items.index = pd.RangeIndex(len(items))
    for column in ("invoice_uuid", "invoice_period", "status"):
        items[column] = np.repeat(pages[column].to_numpy(dtype=object), counts)
    items["line_number"] = items.groupby("invoice_uuid", sort=False).cumcount().add(1)
    return items


def normalize_items(pages: pd.DataFrame, loaded_at: datetime) -> tuple[pd.DataFrame, list[str]]:
    """Item pages (invoice_uuid, invoice_period, status, page, body) → `invoice_items` rows."""
    problems: list[str] = []
    raw = _pages_to_items(pages, problems)
    unknown = sorted(
        set(raw.columns) - ITEM_FIELDS - {"invoice_uuid", "invoice_period", "status", "line_number"}
    )
    out = pd.DataFrame(
        {
            "invoice_uuid": raw["invoice_uuid"].astype("string"),
            "invoice_period": raw["invoice_period"].astype("string"),
            "line_number": raw["line_number"].astype("int32"),
        },
        index=raw.index,
    )
    for field in ITEM_TEXT_FIELDS:
        out[field] = _text(raw, field, problems)
    out["amount"] = _decimal(raw, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    out["duration"] = _decimal(
        raw, "duration", QUANTITY_PATTERN, QUANTITY, problems, required=False
    )
    factor = out["duration_unit"].str.strip().str.lower().map(HOURS_PER_UNIT)
    hours = out["duration"].astype("float64[pyarrow]") * factor.astype("float64")
    out["duration_hours"] = hours.astype("float64")
    out["start_time"] = _timestamp(raw, "start_time", problems)
    out["end_time"] = _timestamp(raw, "end_time", problems)
    out["status"] = raw["status"].astype("string")
    out["loaded_at"] = pd.Timestamp(loaded_at)
    if problems:
        raise InvalidPayloadError(problems)
    return out[ITEM_COLUMNS], unknown


def normalize_invoices(entries: pd.DataFrame, loaded_at: datetime) -> pd.DataFrame:
    """Invoice entries (status, items_total, entry JSON as listed) → `invoices` rows."""
    problems: list[str] = []
    records = [json.loads(entry) for entry in entries["entry"]]
    raw = pd.DataFrame.from_records(records) if records else pd.DataFrame(index=range(0))
    raw.index = entries.index
    for column in ("invoice_uuid", "invoice_period"):
        if column not in raw.columns:
            raw[column] = pd.NA
    out = pd.DataFrame(index=raw.index)
    out["invoice_uuid"] = _text(raw, "invoice_uuid", problems)
    out["invoice_id"] = _text(raw, "invoice_id", problems)
    period = _text(raw, "invoice_period", problems)
    problems += _where(
        raw.assign(invoice_period=period),
        ~period.str.fullmatch(PERIOD_PATTERN).fillna(False).astype(bool),
        "invoice_period",
        "is not a YYYY-MM period",
    )
    out["invoice_period"] = period
    out["amount"] = _decimal(raw, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    out["status"] = entries["status"].astype("string")
    out["updated_at"] = _timestamp(raw, "updated_at", problems)
    out["items_total"] = entries["items_total"].astype("Int64")
    out["loaded_at"] = pd.Timestamp(loaded_at)
    if problems:
        raise InvalidPayloadError(problems)
    return out[INVOICE_COLUMNS].reset_index(drop=True)


SUMMARY_COLUMNS = [
    "invoice_uuid",
    "invoice_id",
    "invoice_period",
    "status",
    "amount",
    "product_charges",
    "overages",
    "taxes",
    "credits_and_adjustments",
    "user_name",
    "user_company",
    "user_email",
    "loaded_at",
]
SUMMARY_PARTS = ("product_charges", "overages", "taxes", "credits_and_adjustments")


def normalize_summaries(raw: pd.DataFrame, loaded_at: datetime) -> pd.DataFrame:
    """Summary bodies (invoice_uuid, invoice_period, status, body) → `invoice_summaries` rows.

    The summary names its month `billing_period`; it must agree with the invoice list.
    """
    problems: list[str] = []
    bodies = [json.loads(body) for body in raw["body"]]
    flat = pd.DataFrame(
        {
            "invoice_uuid": raw["invoice_uuid"].to_numpy(),
            "invoice_period": raw["invoice_period"].to_numpy(),
            "invoice_id": [b.get("invoice_id") for b in bodies],
            "billing_period": [b.get("billing_period") for b in bodies],
            "amount": [b.get("amount") for b in bodies],
            **{
                part: [
                    (b.get(part) or {}).get("amount") if isinstance(b.get(part), dict) else None
                    for b in bodies
                ]
                for part in SUMMARY_PARTS
            },
            **{f: [b.get(f) for b in bodies] for f in ("user_name", "user_company", "user_email")},
        },
        index=raw.index,
    )
    billing = _text(flat, "billing_period", problems)
    problems += _where(
        flat.assign(billing_period=billing),
        billing.notna() & (billing != flat["invoice_period"]),
        "billing_period",
        "differs from the invoice's period",
    )
    out = pd.DataFrame(index=flat.index)
    out["invoice_uuid"] = flat["invoice_uuid"].astype("string")
    out["invoice_id"] = _text(flat, "invoice_id", problems)
    out["invoice_period"] = flat["invoice_period"].astype("string")
    out["status"] = raw["status"].astype("string")
    out["amount"] = _decimal(flat, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    for part in SUMMARY_PARTS:
        out[part] = _decimal(flat, part, MONEY_PATTERN, MONEY, problems, required=False)
    for field in ("user_name", "user_company", "user_email"):
        out[field] = _text(flat, field, problems)
    out["loaded_at"] = pd.Timestamp(loaded_at)
    if problems:
        raise InvalidPayloadError(problems)
    return out[SUMMARY_COLUMNS].reset_index(drop=True)
