"""Faults injected by the sandbox over real HTTP: the warehouse ends complete or unchanged."""

import json
import math
import re
import threading
import time
from decimal import Decimal

import pytest

from pipeline.api import ApiError, Pacer, Page, Progress, ResponseTooLargeError
from pipeline.sandbox import Fault, SandboxServer
from pipeline.sources import INVOICES
from pipeline.sources.base import Target
from pipeline.sources.invoices import INVOICE_PATH, INVOICES_PATH
from pipeline.warehouse.publish import working_file

MONTH = "2024-03"  # 250 items: two pages of 200 in the default dataset


def items_request(uuid):
    return INVOICES.endpoint.request(Target(uuid, MONTH, "final", label=f"invoice {uuid}"))


def test_retry_after_and_exhausted_budget_are_obeyed(sandbox, client, invoice_of):
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    sandbox.inject(
        f"^{INVOICE_PATH.format(key=uuid)}$", Fault("retry_after", seconds=1), Fault("exhausted", 1)
    )
    started = time.monotonic()
    (fetch,) = client.fetch([items_request(uuid)])
    assert time.monotonic() - started >= 1.0
    assert fetch.records == sandbox.data.items[uuid]
    assert client.stats.rate_limited == 1


def test_pacing_stays_under_the_limit_with_zero_429s(make_client):
    """A fetch needing more requests than one window allows is paced, never bounced."""
    with SandboxServer(requests_per_minute=10, minute_seconds=1.0) as server:
        pacer = Pacer(per_minute=10, per_hour=None, minute_seconds=1.0, margin=0.2)
        with make_client(server, per_page=20, pacer=pacer) as api:
            uuids = [i["invoice_uuid"] for i in server.data.invoices[:12]]
            started = time.monotonic()
            fetches = api.fetch([items_request(uuid) for uuid in uuids])
            elapsed = time.monotonic() - started
        assert all(f.problems() == [] for f in fetches)
        statuses = [r["status"] for r in server.requests]
        assert 429 not in statuses
        needed = sum(len(f.pages) for f in fetches)
        assert elapsed >= math.ceil(needed / 10) - 1 - 0.2


def test_a_request_counts_until_its_answer_arrives_and_a_window_after():
    """The server counts a request some time before its answer: a slow answer cannot let a
    request slip into a window the server sees as full."""
    pacer = Pacer(per_minute=2, per_hour=None, minute_seconds=0.5, margin=0.0)
    pacer.acquire()
    pacer.acquire()  # both still unanswered
    third = threading.Event()
    worker = threading.Thread(target=lambda: (pacer.acquire(), third.set()))
    worker.start()
    assert not third.wait(0.8)  # sent more than a window ago, yet still in flight
    released = time.monotonic()
    pacer.release()
    assert third.wait(2.0)
    assert time.monotonic() - released >= 0.5
    worker.join()


@pytest.mark.parametrize("fault", [500, 502, 503, "reset", "truncate"])
def test_transient_faults_are_retried_with_the_same_result(sandbox, make_client, fault, invoice_of):
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", fault, fault)
    with make_client(sandbox) as api:
        (fetch,) = api.fetch([items_request(uuid)])
        assert api.stats.retries == 2
    assert fetch.records == sandbox.data.items[uuid]


def test_a_stalled_response_times_out_and_is_retried(sandbox, make_client):
    sandbox.inject(f"^{INVOICES_PATH}$", Fault("stall", seconds=1.5))
    with make_client(sandbox, timeout=0.5) as api:
        (listing,) = api.fetch([INVOICES.index.request()])
        assert api.stats.retries == 1
    assert len(listing.records) == len(sandbox.data.invoices)


def test_persistent_faults_fail_naming_path_and_status(sandbox, make_client, invoice_of):
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", 503, times=10)
    with make_client(sandbox) as api:
        with pytest.raises(
            ApiError,
            match=r"GET /v2/customers/my/invoices/[\w-]+ page 1: HTTP 503 .*gave up after 4",
        ):
            api.fetch([items_request(uuid)])


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("notjson", "not JSON (content-type text/html), starting '<html><body>502 Bad Gateway"),
        (Fault("bytes", body=b"[" * 10_000 + b"]" * 10_000), "JSON nested deeper than"),
        (Fault("bytes", body=b'["a list"]'), "top-level JSON value is not an object but list"),
    ],
)
def test_a_body_that_is_no_json_object_is_named_and_not_retried(
    sandbox, make_client, invoice_of, fault, says
):
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", fault, times=10)
    with make_client(sandbox) as api:
        with pytest.raises(ApiError, match="HTTP 200 but the response is") as failed:
            api.fetch([items_request(uuid)])
        assert api.stats.retries == 0
    assert says in str(failed.value)
    assert f"GET {INVOICE_PATH.format(key=uuid)} page 1" in str(failed.value)


def test_a_body_that_is_not_utf8_is_kept_byte_for_byte_in_raw(
    sandbox, warehouse_path, invoice_of, page_body, load_month, rows
):
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    page = page_body(sandbox, uuid, 1)
    page["invoice_items"][0]["description"] = "CAFE_MARK"
    sent = json.dumps(page).encode().replace(b"CAFE_MARK", b"Caf\xe9 droplet")
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", Fault("bytes", body=sent))
    assert load_month(sandbox, warehouse_path, MONTH).success
    ((body, received),) = rows(
        working_file(warehouse_path),
        "SELECT body, received FROM raw.pages WHERE endpoint = 'invoice_items' AND page = 1",
    )
    assert received == sent
    assert "Caf\ufffd droplet" in body
    assert rows(warehouse_path, "SELECT description FROM invoice_items WHERE line_number = 1") == [
        ("Caf\ufffd droplet",)
    ]


def test_oversized_response_fails_cleanly(sandbox, make_client):
    sandbox.inject(f"^{INVOICES_PATH}$", "oversize")
    with make_client(sandbox, max_response_bytes=1 << 20) as api:
        with pytest.raises(ResponseTooLargeError, match="bound"):
            api.fetch([INVOICES.index.request()])


def test_hostile_deeply_nested_json_fails_as_bad_json():
    nested = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="nested"):
        Page.parse(INVOICES_PATH, 1, nested)


def test_persistent_failure_leaves_the_month_as_it_was(
    sandbox, warehouse_path, invoice_of, load_month, month_rows
):
    assert load_month(sandbox, warehouse_path, MONTH).success
    before = month_rows(warehouse_path, MONTH)
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", "truncate", times=10)
    result = load_month(sandbox, warehouse_path, MONTH)
    assert not result.success
    assert month_rows(warehouse_path, MONTH) == before


def test_item_count_short_of_meta_total_fails_and_keeps_rows(
    sandbox, warehouse_path, rows, failure_message, invoice_of, page_body, load_month, month_rows
):
    assert load_month(sandbox, warehouse_path, MONTH).success
    before = month_rows(warehouse_path, MONTH)
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    short = page_body(sandbox, uuid, 2)
    short["invoice_items"] = short["invoice_items"][:-1]
    sandbox.inject(
        f"^{INVOICE_PATH.format(key=uuid)}$",
        Fault("json", body=page_body(sandbox, uuid, 1)),
        Fault("json", body=short),
    )
    result = load_month(sandbox, warehouse_path, MONTH)
    assert not result.success
    error = failure_message(result)
    total = len(sandbox.data.items[uuid])
    assert f"invoice {uuid} ({MONTH}): fetched {total - 1} items but meta.total is {total}" in error
    assert month_rows(warehouse_path, MONTH) == before
    # The incomplete fetch is kept in raw for inspection, marked as such.
    assert rows(
        working_file(warehouse_path), "SELECT status FROM raw.fetches ORDER BY fetched_at"
    ) == [
        ("ok",),
        ("incomplete",),
    ]


def test_pages_shifting_while_paging_is_detected(
    sandbox, warehouse_path, failure_message, invoice_of, page_body, load_month
):
    uuid = invoice_of(sandbox, MONTH)["invoice_uuid"]
    first = page_body(sandbox, uuid, 1)
    shifted = page_body(sandbox, uuid, 2)
    # An item was added while we paged: page 2 repeats page 1's last item and the total grew.
    shifted["invoice_items"] = first["invoice_items"][-1:] + shifted["invoice_items"]
    shifted["meta"]["total"] += 1
    sandbox.inject(
        f"^{INVOICE_PATH.format(key=uuid)}$", Fault("json", body=first), Fault("json", body=shifted)
    )
    result = load_month(sandbox, warehouse_path, MONTH)
    assert not result.success
    assert f"invoice {uuid} ({MONTH}): meta.total changed while paging" in failure_message(result)


def test_reissued_invoice_replaces_the_old_one(sandbox, warehouse_path, rows, load_month):
    assert load_month(sandbox, warehouse_path, MONTH).success
    new_uuid = "a0000000-0000-4000-8000-00000000000a"
    sandbox.data = sandbox.data.reissued(
        MONTH, new_uuid, [{"product": "Droplets", "amount": "10.00"}]
    )
    assert load_month(sandbox, warehouse_path, MONTH).success
    assert rows(warehouse_path, "SELECT invoice_uuid, amount FROM invoices") == [
        (new_uuid, Decimal("10.00"))
    ]
    assert rows(warehouse_path, "SELECT count(*) FROM invoice_items") == [(1,)]


def test_list_entry_json_is_kept_verbatim_in_raw(sandbox, warehouse_path, rows, load_month):
    assert load_month(sandbox, warehouse_path, MONTH).success
    (body,) = rows(
        working_file(warehouse_path), "SELECT body FROM raw.pages WHERE endpoint = 'invoice_list'"
    )[0]
    assert json.loads(body)["meta"]["total"] == len(sandbox.data.invoices)


class RecordingLog:
    """Collects what the client would write to a Dagster run log."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))


def test_a_spent_hourly_budget_is_said_when_the_pause_begins(sandbox, make_client):
    """A pause of up to an hour must not look like a hang: it is logged as it starts."""
    sandbox.inject(f"^{INVOICES_PATH}$", Fault("exhausted", seconds=3))
    log = RecordingLog()
    with make_client(sandbox, log=log, pacer=Pacer(None, None)) as api:
        api.fetch([INVOICES.index.request()])
        started = time.monotonic()
        api.fetch([INVOICES.index.request()])
        assert time.monotonic() - started >= 1.0
    warnings = [m for level, m in log.lines if level == "warning"]
    assert len(warnings) == 1 and re.fullmatch(
        r"GET /v2/customers/my/invoices page 1: the token's hourly budget is spent "
        r"\(ratelimit-remaining: 0\); pausing [123]s until ratelimit-reset",
        warnings[0],
    ), warnings


def test_the_log_tells_progress_retries_and_rate_limit_waits(make_client, invoice_of):
    """What a person watching a backfill reads: pages out of the total, and every wait's why."""
    with SandboxServer() as server:
        uuid = invoice_of(server, MONTH)["invoice_uuid"]
        server.inject(f"^{INVOICE_PATH.format(key=uuid)}$", Fault("retry_after", seconds=1), 503)
        log = RecordingLog()
        pacer = Pacer(per_minute=2, per_hour=None, minute_seconds=1.5, margin=0.0)
        with make_client(server, log=log, pacer=pacer) as api:
            api.fetch([INVOICES.index.request()])
            api.fetch([items_request(uuid)], Progress("items", "invoice"))
    warnings = [m for level, m in log.lines if level == "warning"]
    infos = [m for level, m in log.lines if level == "info"]
    assert any("page 1: rate limited (429); waiting 1.0s as the API asks" in m for m in warnings), (
        warnings
    )
    assert any("HTTP 503" in m and "retry 1 of 3 in" in m for m in warnings), warnings
    assert any(
        re.search(
            r"page 1: waited \d\.\ds for the rate limit: staying within 2 requests per minute", m
        )
        for m in infos
    ), infos
    assert infos[-1] == "items: 1/1 invoices complete, 2/2 pages fetched (1/1 invoice totals known)"
