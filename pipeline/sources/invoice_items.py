"""Invoice line items: the item pages of every invoice → `invoice_items` rows.

Pages that break no rule go through Arrow alone (its JSON reader, then typed columns: fast, little
memory); otherwise a pandas path checks every value and names each bad one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from pipeline.sources.base import FETCH
from pipeline.sources.fields import (
    MONEY,
    MONEY_PATTERN,
    QUANTITY,
    QUANTITY_PATTERN,
    InvalidPayloadError,
    NotClean,
    arrow_decimal,
    arrow_text,
    arrow_timestamp,
    decimal,
    prefer_system_allocator,
    text,
    timestamp,
    where,
)

# What an item is and what it was for, as text.
DESCRIPTION_FIELDS = (
    "product",
    "category",
    "project_name",
    "resource_uuid",
    "resource_id",
    "group_description",
    "description",
)
ITEM_TEXT_FIELDS = (*DESCRIPTION_FIELDS, "duration_unit")
ITEM_FIELDS = frozenset(ITEM_TEXT_FIELDS + ("amount", "duration", "start_time", "end_time"))
ITEM_COLUMNS = [
    "invoice_uuid",
    "invoice_period",
    "line_number",
    *DESCRIPTION_FIELDS,
    "amount",
    "duration",
    "duration_unit",
    "duration_hours",
    "start_time",
    "end_time",
    "status",
    "loaded_at",
]
# A duration is a length of time: never negative (a credit's sign is on its amount).
DURATION_PATTERN = r"\d{1,12}(?:\.\d{1,6})?"
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

# Known item fields parse as text; a field the spec does not know is inferred.
_ITEM_PAGE_SCHEMA = pa.schema(
    [("invoice_items", pa.list_(pa.struct([(f, pa.large_string()) for f in sorted(ITEM_FIELDS)])))]
)


# Arrow's reader parses blocks of this size in parallel. Pages are read a few blocks at a time,
# so the parser's temporaries stay small beside the pages themselves.
_BLOCK_BYTES = 4 << 20
_CHUNK_BYTES = 8 * _BLOCK_BYTES


def _concatenated(bodies: pa.Array) -> pa.Buffer:
    """A run of pages' bodies back to back: a slice of Arrow's own string data, no copy."""
    offsets = np.frombuffer(bodies.buffers()[1], dtype=np.int64)[bodies.offset :]
    start, end = int(offsets[0]), int(offsets[len(bodies)])
    return bodies.buffers()[2].slice(start, end - start)


def _chunks(bodies: pa.ChunkedArray) -> Iterator[pa.Array]:
    """Runs of consecutive pages of about `_CHUNK_BYTES` each, cut inside the column's own
    chunks so that each run's bodies already lie in one buffer."""
    for chunk in bodies.chunks:
        if not len(chunk):
            continue
        sizes = np.cumsum(pc.fill_null(pc.binary_length(chunk), 0).to_numpy())
        cuts = np.searchsorted(sizes, np.arange(_CHUNK_BYTES, sizes[-1], _CHUNK_BYTES), "right")
        edges = [0, *sorted(set(cuts.tolist()) - {0, len(chunk)}), len(chunk)]
        for lo, hi in zip(edges, edges[1:], strict=False):
            yield chunk[lo:hi]


def _bodies(pages: pd.DataFrame) -> pa.ChunkedArray:
    bodies = pa.array(pages["body"], type=pa.large_string())
    return pa.chunked_array([bodies]) if isinstance(bodies, pa.Array) else bodies


def _parsed(bodies: pa.Array, *, newlines_in_values: bool) -> pa.Table:
    """One row per body. A body on one line (as the API sends it) is parsed in parallel blocks
    cut at newlines, so each gets one appended; otherwise the reader must find where each
    object ends by parsing, which is slower."""
    if not newlines_in_values:
        empty, newline = pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
        bodies = pc.binary_join_element_wise(bodies, empty, newline)
    return pa_json.read_json(
        pa.BufferReader(_concatenated(bodies)),
        read_options=pa_json.ReadOptions(block_size=_BLOCK_BYTES),
        parse_options=pa_json.ParseOptions(
            explicit_schema=_ITEM_PAGE_SCHEMA,
            unexpected_field_behavior="infer",
            newlines_in_values=newlines_in_values,
        ),
    )


def _is_text(kind: pa.DataType) -> bool:
    """Known fields parse as large_string; an unknown one read as text is inferred as string."""
    return pa.types.is_large_string(kind) or pa.types.is_string(kind) or pa.types.is_null(kind)


def _read_items(bodies: pa.Array) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Pages parsed by Arrow's JSON reader (C++, multi-threaded): their items as struct arrays
    of text fields, one per block the reader parsed, and how many each page holds.

    Raises NotClean when a value has the wrong JSON type (a number where text belongs, an item
    that is not an object): the slower path then names each bad value precisely.
    """
    if bodies.null_count:
        raise NotClean
    try:
        table = _parsed(bodies, newlines_in_values=False)
    except pa.ArrowInvalid:
        try:  # a body that spans lines (pretty-printed): the slower mode that allows it
            table = _parsed(bodies, newlines_in_values=True)
        except pa.ArrowInvalid:
            raise NotClean from None
    if table.num_rows != len(bodies):  # a blank body, which the reader skips
        raise NotClean
    column = table.column("invoice_items")
    flat = pc.list_flatten(column)
    if not all(_is_text(f.type) for f in flat.type):
        raise NotClean
    return flat, pc.fill_null(pc.list_value_length(column), 0).to_numpy()


def _items_with_arrow(pages: pd.DataFrame) -> tuple[pa.ChunkedArray, np.ndarray] | None:
    """Every page's items as one chunked struct array (for the pandas path), or None where
    Arrow cannot read them as text."""
    try:
        parts = [_read_items(chunk) for chunk in _chunks(_bodies(pages))]
        flat = pa.chunked_array([c for items, _ in parts for c in items.chunks])
    except (NotClean, pa.ArrowInvalid):  # or chunks that found different unknown fields
        return None
    return flat, np.concatenate([counts for _, counts in parts])


def _typed_chunk(flat: pa.ChunkedArray) -> dict[str, pa.ChunkedArray]:
    """One chunk's item fields typed; NotClean at the first value that breaks a rule."""
    n = len(flat)
    fields = {f.name: pc.struct_field(flat, f.name) for f in flat.type}
    typed = {name: arrow_text(fields.get(name), n) for name in ITEM_TEXT_FIELDS}
    typed["amount"] = arrow_decimal(
        arrow_text(fields.get("amount"), n), MONEY_PATTERN, MONEY, required=True
    )
    typed["duration"] = arrow_decimal(
        arrow_text(fields.get("duration"), n), DURATION_PATTERN, QUANTITY, required=False
    )
    for name in ("start_time", "end_time"):
        typed[name] = arrow_timestamp(arrow_text(fields.get(name), n))
    units = pc.utf8_lower(pc.utf8_trim_whitespace(typed["duration_unit"]))
    factor = pc.take(
        pa.array(HOURS_PER_UNIT.values(), pa.float64()),
        pc.index_in(units, value_set=pa.array(HOURS_PER_UNIT.keys(), pa.large_string())),
    )
    typed["duration_hours"] = pc.multiply(pc.cast(typed["duration"], pa.float64()), factor)
    return typed


def _read_ahead(chunks: Iterator[pa.Array]) -> Iterator[tuple[pa.ChunkedArray, np.ndarray]]:
    """Each run of pages parsed, the next one already being parsed while the caller types this
    one: the reader's threads leave gaps that the typing fills."""
    with ThreadPoolExecutor(1) as ahead:
        pending = None
        for chunk in chunks:
            parsing = ahead.submit(_read_items, chunk)
            if pending is not None:
                yield pending.result()
            pending = parsing
        if pending is not None:
            yield pending.result()


def _typed_with_arrow(
    pages: pd.DataFrame, loaded_at: datetime
) -> tuple[pd.DataFrame, list[str]] | None:
    """The `invoice_items` rows computed on Arrow columns alone, a few blocks of pages at a
    time, for items that break no rule; None at the first value that does, for the pandas path
    to name."""
    columns: dict[str, list] = {}
    types: dict[str, pa.DataType] = {}
    counts, unknown = [], set()
    try:
        for flat, per_page in _read_ahead(_chunks(_bodies(pages))):
            unknown |= {f.name for f in flat.type} - ITEM_FIELDS
            for name, values in _typed_chunk(flat).items():
                columns.setdefault(name, []).extend(values.chunks)
                types[name] = values.type
            counts.append(per_page)
            del flat
    except NotClean:
        return None
    typed = {name: pa.chunked_array(chunks, types[name]) for name, chunks in columns.items()}
    page_of_item = np.repeat(np.arange(len(pages)), np.concatenate(counts))
    n = len(page_of_item)
    # Pages are sorted by invoice, so an invoice's items are contiguous: number them from 1.
    invoice_codes = pd.factorize(pages["invoice_uuid"])[0][page_of_item]
    index = np.arange(n)
    starts = np.ones(n, dtype=bool)
    starts[1:] = invoice_codes[1:] != invoice_codes[:-1]
    first = np.maximum.accumulate(np.where(starts, index, 0))

    def strings(values: pa.ChunkedArray) -> pd.Series:
        return pd.Series(pd.arrays.ArrowStringArray(values))

    def per_page(column: str) -> pd.Series:
        values = pc.take(pa.array(pages[column], pa.large_string()), page_of_item)
        return strings(pa.chunked_array([values]))

    out = pd.DataFrame(
        {
            "invoice_uuid": per_page("invoice_uuid"),
            "invoice_period": per_page("invoice_period"),
            "line_number": (index - first + 1).astype("int32"),
            **{name: strings(typed[name]) for name in ITEM_TEXT_FIELDS},
            "amount": pd.Series(typed["amount"], dtype=pd.ArrowDtype(MONEY)),
            "duration": pd.Series(typed["duration"], dtype=pd.ArrowDtype(QUANTITY)),
            "duration_hours": typed["duration_hours"].to_numpy(),
            "start_time": pd.Series(typed["start_time"].to_pandas()),
            "end_time": pd.Series(typed["end_time"].to_pandas()),
            "status": per_page("status"),
            "loaded_at": pd.Timestamp(loaded_at),
            **({FETCH: per_page(FETCH)} if FETCH in pages else {}),
        }
    )
    return out[_item_columns(pages)], sorted(unknown)


def _pages_to_items(
    pages: pd.DataFrame, parsed: tuple[pa.StructArray, np.ndarray] | None, problems: list[str]
) -> pd.DataFrame:
    """Concatenate item pages (sorted by invoice and page) into one frame of raw item fields."""
    if parsed is not None:
        flat, counts = parsed
        items = pd.DataFrame(
            {
                f.name: pd.Series(
                    pc.struct_field(flat, f.name), dtype=pd.ArrowDtype(pa.large_string())
                )
                for f in flat.type
            }
        )
        return _with_invoice_columns(items, pages, counts)
    records: list[dict[str, Any]] = []
    counts_: list[int] = []
    for uuid, period, page, body in zip(
        pages["invoice_uuid"], pages["invoice_period"], pages["page"], pages["body"], strict=True
    ):
        found = json.loads(body).get("invoice_items") or []
        if not all(isinstance(item, dict) for item in found):
            problems.append(f"invoice {uuid} ({period}), page {page}: an item is not an object")
            found = [item if isinstance(item, dict) else {} for item in found]
        records.extend(found)
        counts_.append(len(found))
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(index=range(0))
    return _with_invoice_columns(frame, pages, counts_)


def _with_invoice_columns(items: pd.DataFrame, pages: pd.DataFrame, counts: Any) -> pd.DataFrame:
    """Each item gets its invoice's uuid, period and status, and its line number."""
    items.index = pd.RangeIndex(len(items))
    for column in ("invoice_uuid", "invoice_period", "status", FETCH):
        if column not in pages:
            continue
        items[column] = np.repeat(pages[column].to_numpy(dtype=object), counts)
    items["line_number"] = items.groupby("invoice_uuid", sort=False).cumcount().add(1)
    return items


def normalize_items(pages: pd.DataFrame, loaded_at: datetime) -> tuple[pd.DataFrame, list[str]]:
    """Item pages (invoice_uuid, invoice_period, status, page, body, and FETCH if any) →
    `invoice_items` rows, each marked with its page's FETCH when the pages carry one.

    Pages that break no rule go through Arrow alone (fast, little memory); otherwise the pandas
    path below checks every value and names each bad one.
    """
    prefer_system_allocator()
    pages = pages.sort_values(["invoice_uuid", "page"], kind="stable")
    fast = _typed_with_arrow(pages, loaded_at) if len(pages) else None
    if fast is not None:
        return fast
    parsed = _items_with_arrow(pages) if len(pages) else None
    problems: list[str] = []
    raw = _pages_to_items(pages, parsed, problems)
    unknown = sorted(
        set(raw.columns)
        - ITEM_FIELDS
        - {"invoice_uuid", "invoice_period", "status", "line_number", FETCH}
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
        out[field] = text(raw, field, problems)
    out["amount"] = decimal(raw, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    out["duration"] = decimal(raw, "duration", QUANTITY_PATTERN, QUANTITY, problems, required=False)
    problems += where(
        raw.assign(duration=text(raw, "duration", [])),
        (out["duration"] < 0).fillna(False).astype(bool),
        "duration",
        "is negative: a duration is a length of time",
    )
    factor = out["duration_unit"].str.strip().str.lower().map(HOURS_PER_UNIT)
    hours = out["duration"].astype("float64[pyarrow]") * factor.astype("float64")
    out["duration_hours"] = hours.astype("float64")
    out["start_time"] = timestamp(raw, "start_time", problems)
    out["end_time"] = timestamp(raw, "end_time", problems)
    out["status"] = raw["status"].astype("string")
    out["loaded_at"] = pd.Timestamp(loaded_at)
    if FETCH in raw:
        out[FETCH] = raw[FETCH].to_numpy()
    if problems:
        raise InvalidPayloadError(problems)
    return out[_item_columns(pages)], unknown


def _item_columns(pages: pd.DataFrame) -> list[str]:
    """The `invoice_items` columns, and each row's FETCH when its pages carry one."""
    return [*ITEM_COLUMNS, FETCH] if FETCH in pages else ITEM_COLUMNS
