"""Invoices and their line items: the invoice list finds the month's invoices (final, else the
month-to-date preview), each invoice's items are fetched page by page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from pipeline.api import LINKS, Page
from pipeline.months import MONTH_PATTERN, is_month
from pipeline.sources.base import (
    FETCH,
    Check,
    Endpoint,
    Normalized,
    RawData,
    Source,
    Table,
    Target,
    Targets,
)
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


def normalize_invoices(entries: pd.DataFrame, loaded_at: datetime) -> pd.DataFrame:
    """Invoice entries (status, items_total, entry JSON as listed, and FETCH if any) →
    `invoices` rows, each marked with its entry's FETCH when the entries carry one."""
    problems: list[str] = []
    records = [json.loads(entry) for entry in entries["entry"]]
    raw = pd.DataFrame.from_records(records) if records else pd.DataFrame(index=range(0))
    raw.index = entries.index
    for column in ("invoice_uuid", "invoice_period"):
        if column not in raw.columns:
            raw[column] = pd.NA
    out = pd.DataFrame(index=raw.index)
    out["invoice_uuid"] = text(raw, "invoice_uuid", problems)
    out["invoice_id"] = text(raw, "invoice_id", problems)
    period = text(raw, "invoice_period", problems)
    problems += where(
        raw.assign(invoice_period=period),
        ~period.str.fullmatch(MONTH_PATTERN).fillna(False).astype(bool),
        "invoice_period",
        "is not a YYYY-MM period",
    )
    out["invoice_period"] = period
    out["amount"] = decimal(raw, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    out["status"] = entries["status"].astype("string")
    out["updated_at"] = timestamp(raw, "updated_at", problems)
    out["items_total"] = entries["items_total"].astype("Int64")
    out["loaded_at"] = pd.Timestamp(loaded_at)
    columns = INVOICE_COLUMNS
    if FETCH in entries:
        out[FETCH] = entries[FETCH].to_numpy()
        columns = [*INVOICE_COLUMNS, FETCH]
    if problems:
        raise InvalidPayloadError(problems)
    return out[columns].reset_index(drop=True)


# -- the declaration ------------------------------------------------------------------------
# Checks on the stored tables: each query returns the offending rows.
ITEMS_MATCH_META_TOTAL = """
    SELECT i.invoice_uuid, i.invoice_period, i.items_total AS meta_total,
           count(it.line_number) AS loaded
    FROM invoices AS i
    LEFT JOIN invoice_items AS it USING (invoice_uuid, invoice_period)
    GROUP BY ALL
    HAVING loaded <> coalesce(i.items_total, -1)
    ORDER BY i.invoice_period
"""
ITEMS_SUM_TO_INVOICE = """
    SELECT i.invoice_uuid, i.invoice_period, i.status, i.amount AS invoice_amount,
           coalesce(sum(it.amount), 0) AS items_sum,
           coalesce(sum(it.amount), 0) - i.amount AS difference
    FROM invoices AS i
    LEFT JOIN invoice_items AS it USING (invoice_uuid, invoice_period)
    GROUP BY i.invoice_uuid, i.invoice_period, i.status, i.amount
    HAVING difference <> 0
    ORDER BY i.invoice_period
"""
DUPLICATE_LINES = """
    SELECT invoice_uuid, line_number, count(*) AS copies
    FROM invoice_items
    GROUP BY ALL
    HAVING copies > 1
"""
PERIOD_MISMATCH = f"""
    SELECT it.invoice_uuid, it.invoice_period AS item_period, i.invoice_period AS invoice_period,
           count(*) AS items
    FROM invoice_items AS it
    LEFT JOIN invoices AS i USING (invoice_uuid)
    WHERE i.invoice_period IS DISTINCT FROM it.invoice_period
       OR NOT regexp_full_match(it.invoice_period, '{MONTH_PATTERN}')
    GROUP BY ALL
"""  # noqa: S608 (a constant pattern, no input)

UNKNOWN_DURATION_UNITS = """
    SELECT duration_unit, count(*) AS items, min(invoice_period) AS first_period
    FROM invoice_items
    WHERE duration IS NOT NULL AND duration_hours IS NULL
    GROUP BY ALL
"""

INVOICES_PATH = "/v2/customers/my/invoices"
# A closed month's rows: its final invoices. A swap never leaves such a month with none.
FINAL = "status = 'final'"
INVOICE_PATH = INVOICES_PATH + "/{key}"


def invoice_target(uuid: str, period: str, status: str, entry: Any = None) -> Target:
    """An invoice to fetch for; the preview's pages are served under the literal `preview`."""
    return Target(
        key=uuid,
        partition=period,
        status=status,
        entry=entry,
        path_key="preview" if status == "preview" else None,
        label=f"invoice {uuid} ({period})",
    )


# An invoice's uuid as the API writes it; it becomes a path segment, so nothing else is let in.
UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def listed_invoice(entry: Any, status: str) -> Target:
    """An invoice-list entry (or the preview) as a target, refused unless its uuid is a uuid and
    its period a real month: the period decides which month the swap replaces, so a listed
    `2026-13` must fail the fetch, not leave its real month with no invoice."""
    if not isinstance(entry, dict):
        raise InvalidPayloadError([f"invoice list entry is not an object: {_shown(entry)}"])
    uuid, period = entry.get("invoice_uuid"), entry.get("invoice_period")
    name = f"invoice {uuid!r}" if isinstance(uuid, str) else "an invoice list entry"
    problems = []
    if not isinstance(uuid, str) or not UUID_PATTERN.fullmatch(uuid):
        problems.append(f"{name}, field 'invoice_uuid': {uuid!r} is not a uuid")
    if not is_month(period):
        problems.append(f"{name}, field 'invoice_period': {period!r} is not a YYYY-MM month")
    if problems:
        raise InvalidPayloadError([f"{p} ({status} in the invoice list)" for p in problems])
    return invoice_target(uuid, period, status, entry)


def _shown(entry: Any) -> str:
    return json.dumps(entry, ensure_ascii=False)[:200]


def landed_invoices(targets: pd.DataFrame) -> list[Target]:
    """The invoices a landed invoice fetch set out to load (its raw targets), as targets again:
    what a child source, such as the summaries, fetches for."""
    return [
        invoice_target(uuid, period, status)
        for uuid, period, status in zip(
            targets["target_key"], targets["partition_key"], targets["status"], strict=True
        )
    ]


def invoice_pages(raw: RawData, endpoint: str) -> pd.DataFrame:
    """An endpoint's landed pages with the invoice each belongs to, its status, and the fetch
    the page came from."""
    pages = raw.pages_of(endpoint)
    status = dict(zip(raw.targets["target_key"], raw.targets["status"], strict=True))
    return pd.DataFrame(
        {
            "invoice_uuid": pages["request_key"].to_numpy(),
            "invoice_period": pages["partition_key"].to_numpy(),
            "status": pages["request_key"].map(status).to_numpy(),
            "page": pages["page"].to_numpy(),
            "body": pages["body"].to_numpy(),
            FETCH: pages["fetch_id"].to_numpy(),
        }
    )


def month_invoices(found: Targets) -> list[Target]:
    """The invoices that make up each month: its final invoices, else the preview.

    Once a month closes its final invoice supersedes the preview, so both are never loaded.
    """
    assert found.index is not None
    wanted = set(found.periods)
    listed, problems = [], []
    for entry in found.index.records:
        try:
            listed.append(listed_invoice(entry, "final"))
        except InvalidPayloadError as exc:
            problems += exc.problems
    if problems:
        raise InvalidPayloadError(problems)
    chosen = [target for target in listed if target.partition in wanted]
    closed = {target.partition for target in chosen}
    preview = found.index.pages[0].data.get("invoice_preview") if found.index.pages else None
    if preview:
        target = listed_invoice(preview, "preview")
        if target.partition in wanted - closed:
            chosen.append(target)
    return chosen


def _first_page_totals(pages: pd.DataFrame) -> dict[str, int | None]:
    """`meta.total` of each invoice's first item page: the item count the API announced."""
    first = pages[pages["page"] == 1]
    totals: dict[str, int | None] = {}
    for uuid, body in zip(first["invoice_uuid"], first["body"], strict=True):
        totals[uuid] = LINKS.total(Page.parse(INVOICE_PATH, 1, body))
    return totals


def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
    """The landed invoice entries and item pages → `invoices` and `invoice_items`."""
    targets = raw.targets
    pages = invoice_pages(raw, "invoice_items")
    totals = _first_page_totals(pages)
    entries = pd.DataFrame(
        {
            "status": targets["status"].to_numpy(),
            "items_total": pd.array(
                [totals.get(key) for key in targets["target_key"]], dtype="Int64"
            ),
            "entry": targets["entry"].to_numpy(),
            # Several teams' fetches at once (a batch): each invoice's own.
            **({FETCH: targets[FETCH].to_numpy()} if FETCH in targets else {}),
        }
    )
    items, unknown = normalize_items(pages, loaded_at)
    return Normalized(
        {"invoices": normalize_invoices(entries, loaded_at), "invoice_items": items},
        [f"item fields not in the API spec (kept in raw only): {unknown}"] if unknown else [],
    )


def invariants(raw: RawData, tables: dict[str, pd.DataFrame], periods: Sequence[str]) -> list[str]:
    """What must hold before COMMIT: complete invoices, each listed once, months in range."""
    invoices, items = tables["invoices"], tables["invoice_items"]
    problems = []
    counts = items.groupby("invoice_uuid").size()
    loaded = invoices["invoice_uuid"].map(counts).fillna(0).astype(int)
    for row, got in zip(invoices.itertuples(), loaded, strict=True):
        if pd.notna(row.items_total) and got != row.items_total:
            problems.append(
                f"invoice {row.invoice_uuid} ({row.invoice_period}): {got} items loaded, "
                f"meta.total is {row.items_total}"
            )
    if invoices["invoice_uuid"].duplicated().any():
        dup = invoices.loc[invoices["invoice_uuid"].duplicated(), "invoice_uuid"].tolist()
        problems.append(f"invoice(s) listed twice: {dup[:5]}")
    outside = sorted(set(invoices["invoice_period"].dropna()) - set(periods))
    if outside:
        problems.append(f"invoice periods {outside} are outside this run's months")
    return problems


INVOICES = Source(
    name="invoices",
    description="Every invoice of the month (final, else the preview) and every line item.",
    index=Endpoint(
        "invoice_list",
        INVOICES_PATH,
        LINKS,
        records="invoices",
        noun="invoices",
        primary_key="invoice_uuid",
    ),
    endpoint=Endpoint("invoice_items", INVOICE_PATH, LINKS, records="invoice_items", noun="items"),
    targets=month_invoices,
    normalize=normalize,
    invariants=invariants,
    tables=(
        Table(
            "invoices",
            ("invoice_uuid",),
            "One row per invoice (final) or per month-to-date preview.",
            plot=True,
            noun="invoices",
            closed=FINAL,
        ),
        Table(
            "invoice_items",
            ("invoice_uuid", "line_number"),
            "Every line item of every invoice, amounts exact, durations in hours.",
            spend_by="product",
            noun="items",
            closed=FINAL,
        ),
    ),
    checks=(
        Check(
            "items_match_meta_total",
            "invoice_items",
            ITEMS_MATCH_META_TOTAL,
            "Per invoice, the loaded items equal the count the API announced (meta.total).",
            "every invoice is complete",
            blocking=True,
        ),
        Check(
            "items_sum_to_invoice_amount",
            "invoice_items",
            ITEMS_SUM_TO_INVOICE,
            "Per invoice, the items' amounts add up to the invoice amount; differences listed.",
            "every invoice's items add up to its amount",
            warn_only=True,
        ),
        Check(
            "unique_invoice_lines",
            "invoice_items",
            DUPLICATE_LINES,
            "No (invoice_uuid, line_number) appears twice.",
            "no duplicate lines",
            blocking=True,
        ),
        Check(
            "items_in_their_invoice_period",
            "invoice_items",
            PERIOD_MISMATCH,
            "Every item sits in the partition (invoice_period) of the invoice it belongs to.",
            "every item is in its invoice's period",
            blocking=True,
        ),
        Check(
            "durations_in_known_units",
            "invoice_items",
            UNKNOWN_DURATION_UNITS,
            "Durations in a unit we cannot convert load with NULL duration_hours; listed here.",
            "every duration converts to hours",
            warn_only=True,
        ),
    ),
    target_noun="invoice",
    progress_name="items",
    missing="is in the invoice list but its items answer 404",
    raw_asset="raw_invoice_pages",
    tables_step="invoice_tables",
    many_fetches=True,
)
