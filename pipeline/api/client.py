"""DigitalOcean billing API client: one session, bounded concurrency, retries as one policy.

The token is attached per request to URLs built from the configured base URL only; `links` in
responses are read for page numbers and never requested, and redirects are not followed.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from pipeline.api.errors import (
    ApiError,
    AuthError,
    IncompleteInvoiceError,
    NotFoundError,
    ResponseTooLargeError,
)
from pipeline.api.models import InvoiceFetch, InvoiceListing, InvoiceRef, Page
from pipeline.api.pacing import Pacer
from pipeline.settings import validate_api_url

INVOICES_PATH = "/v2/customers/my/invoices"
MAX_PER_PAGE = 200
DEFAULT_WORKERS = 8
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "do-billing-pipeline/0.1 (+requests)"
# Workers that sit out the same rate-limit pause would each report it; one line per this many
# seconds is enough for a person following the run.
WAIT_LOG_INTERVAL = 5.0
# How often fetch loops report progress.
PROGRESS_SECONDS = 2.0


class Log(Protocol):
    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before failing: exponential backoff with jitter, bounded."""

    attempts: int = 5
    backoff: float = 0.5
    backoff_max: float = 20.0
    jitter: float = 0.5
    max_rate_limit_waits: int = 30
    max_retry_after: float = 3600.0

    def delay(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff * 2 ** (attempt - 1))
        return base * (1 - self.jitter + 2 * self.jitter * random.random())


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


def items_path(uuid: str) -> str:
    return f"{INVOICES_PATH}/{quote(uuid, safe='')}"


class DigitalOceanClient:
    """Fetches the invoice list and every item page, concurrently and completely."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        per_page: int = MAX_PER_PAGE,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = 5.0,
        max_workers: int = DEFAULT_WORKERS,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        max_response_bytes: int = 32 * 1024 * 1024,
        log: Log | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise AuthError("DIGITALOCEAN_TOKEN is empty: set it to a token with billing:read")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}")
        self.base_url = validate_api_url(base_url)
        self._host = urlsplit(self.base_url).netloc
        self._auth = {"Authorization": f"Bearer {token}"}
        self.per_page = per_page
        self.timeout = (connect_timeout, timeout)
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer()
        self.max_response_bytes = max_response_bytes
        self.log: Log = log or logging.getLogger(__name__)
        self.stats = ClientStats()
        self._wait_log_lock = threading.Lock()
        self._last_wait_log = (-WAIT_LOG_INTERVAL, "")
        self._sleep = sleep
        self.max_workers = max_workers
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_workers, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> DigitalOceanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one page, with the retry policy ---------------------------------------------------
    def get_page(self, path: str, page: int | None = 1) -> Page:
        """GET one page as JSON, retrying what can succeed later and failing fast on the rest."""
        url = self.base_url + path
        params = {"page": page, "per_page": self.per_page} if page else None
        where = f"GET {path}" + (f" page {page}" if page else "")
        attempt = rate_waits = 0
        while True:
            waited, reason = self.pacer.acquire()
            if waited >= 1.0:
                self._log_wait(where, waited, reason)
            self.stats.requests += 1
            try:
                resp = self.session.get(
                    url,
                    params=params,
                    headers=self._auth,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                )
                with resp:
                    body = self._read_bounded(resp, where)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                failure = f"{type(exc).__name__} (network error or no answer in time)"
            else:
                self.pacer.observe(resp.headers)
                status = resp.status_code
                if status == 200:
                    try:
                        return Page.parse(path, page or 1, body)
                    except ValueError as exc:
                        failure = f"response is not valid JSON ({exc.__class__.__name__})"
                elif status == 429:
                    rate_waits += 1
                    self.stats.rate_limited += 1
                    if rate_waits > self.retry.max_rate_limit_waits:
                        raise ApiError(
                            f"{where}: still rate limited (429) after {rate_waits - 1} waits; "
                            "another client may be using the same token's budget",
                            path=path,
                            status=status,
                        )
                    delay = self._retry_after(resp.headers)
                    self.log.warning(
                        f"{where}: rate limited (429); waiting {delay:.1f}s as the API asks"
                    )
                    self.pacer.pause_for(delay)
                    continue
                elif status in (401, 403):
                    raise AuthError(
                        f"{where}: HTTP {status} {_error_id(body)}. Check DIGITALOCEAN_TOKEN: it "
                        "must be a valid DigitalOcean API token with the billing:read scope.",
                        path=path,
                        status=status,
                    )
                elif status == 404:
                    raise NotFoundError(f"{where}: HTTP 404 not found", path=path, status=status)
                elif status >= 500:
                    failure = f"HTTP {status} {_error_id(body)}".rstrip()
                else:
                    raise ApiError(
                        f"{where}: unexpected HTTP {status} {_error_id(body)}".rstrip(),
                        path=path,
                        status=status,
                    )
            attempt += 1
            if attempt >= self.retry.attempts:
                raise ApiError(f"{where}: {failure}; gave up after {attempt} attempts", path=path)
            delay = self.retry.delay(attempt)
            self.stats.retries += 1
            self.log.warning(
                f"{where}: {failure}; retry {attempt} of {self.retry.attempts - 1} in {delay:.1f}s"
            )
            self._sleep(delay)

    def _log_wait(self, where: str, waited: float, reason: str) -> None:
        """One line per pause and reason, not one per worker thread that sat it out."""
        now = time.monotonic()
        with self._wait_log_lock:
            last_at, last_reason = self._last_wait_log
            if reason == last_reason and now - last_at < WAIT_LOG_INTERVAL:
                return
            self._last_wait_log = (now, reason)
        self.log.info(f"{where}: waited {waited:.1f}s for the rate limit: {reason}")

    def _read_bounded(self, resp: requests.Response, where: str) -> str:
        limit = self.max_response_bytes
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLargeError(
                f"{where}: response of {int(declared)} bytes exceeds the {limit}-byte bound"
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            if size > limit:
                raise ResponseTooLargeError(f"{where}: response exceeds the {limit}-byte bound")
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def _retry_after(self, headers: Any) -> float:
        value = headers.get("retry-after")
        try:
            delay = float(value) if value is not None else None
        except ValueError:
            delay = None
        if delay is None:
            reset = headers.get("ratelimit-reset")
            try:
                delay = float(reset) - time.time() if reset else None
            except ValueError:
                delay = None
        return min(max(delay if delay is not None else 1.0, 0.0), self.retry.max_retry_after)

    # -- paged collections ---------------------------------------------------------------
    def _page_count(self, first: Page) -> int | None:
        total = first.total
        return math.ceil(total / self.per_page) if total is not None else None

    def _next_page_number(self, page: Page) -> int | None:
        """Page number of `links.pages.next`, if any; the link itself is never requested."""
        links = page.data.get("links")
        pages = links.get("pages") if isinstance(links, dict) else None
        nxt = pages.get("next") if isinstance(pages, dict) else None
        if not isinstance(nxt, str):
            return None
        numbers = parse_qs(urlsplit(nxt).query).get("page")
        if not numbers or not numbers[0].isdigit() or int(numbers[0]) <= page.page:
            return None
        return int(numbers[0])

    def list_invoices(self) -> InvoiceListing:
        """The whole invoice list: page 1, then the other pages at once."""
        first = self.get_page(INVOICES_PATH, 1)
        pages = [first]
        count = self._page_count(first)
        if count is None:
            while (nxt := self._next_page_number(pages[-1])) is not None:
                pages.append(self.get_page(INVOICES_PATH, nxt))
        elif count > 1:
            with ThreadPoolExecutor(self.max_workers, thread_name_prefix="do-list") as pool:
                pages += list(
                    pool.map(lambda n: self.get_page(INVOICES_PATH, n), range(2, count + 1))
                )
        entries: list[dict[str, Any]] = []
        for page in pages:
            found = page.data.get("invoices")
            if not isinstance(found, list):
                raise ApiError(f"GET {INVOICES_PATH} page {page.page}: no 'invoices' list")
            entries.extend(found)
        invoices = [InvoiceRef.from_entry(e, "final") for e in entries]
        uuids = [ref.invoice_uuid for ref in invoices]
        if first.total is not None and (
            len(invoices) != first.total or len(set(uuids)) != len(uuids)
        ):
            raise IncompleteInvoiceError(
                f"invoice list: fetched {len(set(uuids))} distinct invoices but meta.total is "
                f"{first.total}; the list changed while paging, re-run"
            )
        raw_preview = first.data.get("invoice_preview")
        preview = InvoiceRef.from_entry(raw_preview, "preview") if raw_preview else None
        self.log.info(
            f"invoice list: {len(invoices)} invoices in {len(pages)} page(s)"
            + (f", preview {preview.invoice_period}" if preview else "")
        )
        return InvoiceListing(pages=pages, invoices=invoices, preview=preview)

    def fetch_summaries(self, refs: Iterable[InvoiceRef]) -> list[Page]:
        """The `/summary` of each invoice (one unpaged GET each), concurrently, in order."""
        refs = list(refs)
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="do-summary") as pool:
            futures = [
                pool.submit(self.get_page, items_path(ref.fetch_uuid) + "/summary", None)
                for ref in refs
            ]
            progress = _Every(PROGRESS_SECONDS)
            try:
                for done, future in enumerate(as_completed(futures), start=1):
                    future.result()  # the first failure stops the rest
                    if progress.due(force=done == len(refs)):
                        self.log.info(f"summaries: {done}/{len(refs)} fetched")
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
            return [future.result() for future in futures]

    def fetch_items(self, refs: Iterable[InvoiceRef]) -> list[InvoiceFetch]:
        """Every item page of every invoice, first pages first, the rest as totals are known.

        A failure anywhere cancels what is queued and raises: a month is loaded whole or not at all.
        """
        refs = list(refs)
        by_uuid: dict[str, dict[int, Page]] = {ref.invoice_uuid: {} for ref in refs}
        expected_pages: dict[str, int] = {}
        done_invoices = 0
        progress = _Every(PROGRESS_SECONDS)
        pending: dict[Future[Page], tuple[InvoiceRef, int]] = {}
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="do-items") as pool:

            def submit(ref: InvoiceRef, number: int) -> None:
                future = pool.submit(self.get_page, items_path(ref.fetch_uuid), number)
                pending[future] = (ref, number)

            for ref in refs:
                submit(ref, 1)
            try:
                while pending:
                    finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                    for future in finished:
                        ref, number = pending.pop(future)
                        try:
                            page = future.result()
                        except NotFoundError as exc:
                            raise NotFoundError(
                                f"invoice {ref.invoice_uuid} ({ref.invoice_period}) is in the "
                                f"invoice list but its items answer 404 ({exc})",
                                path=exc.path,
                                status=404,
                            ) from None
                        by_uuid[ref.invoice_uuid][number] = page
                        if number == 1:
                            count = self._page_count(page) or 1
                            expected_pages[ref.invoice_uuid] = count
                            for n in range(2, count + 1):
                                submit(ref, n)
                        if len(by_uuid[ref.invoice_uuid]) == expected_pages[ref.invoice_uuid]:
                            done_invoices += 1
                    if progress.due(force=not pending):
                        fetched = sum(len(p) for p in by_uuid.values())
                        known = sum(expected_pages.values())
                        self.log.info(
                            f"items: {done_invoices}/{len(refs)} invoices complete, "
                            f"{fetched}/{known} pages fetched "
                            f"({len(expected_pages)}/{len(refs)} invoice totals known)"
                        )
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return [
            InvoiceFetch(
                ref=ref,
                pages=[by_uuid[ref.invoice_uuid][n] for n in sorted(by_uuid[ref.invoice_uuid])],
            )
            for ref in refs
        ]


class _Every:
    """Due at most once per `seconds`, or when forced: progress lines a person can read."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = time.monotonic()

    def due(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last > self.seconds:
            self._last = now
            return True
        return False


def _error_id(body: str) -> str:
    """The API's error id and message, for messages (bodies never contain the token)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and "id" in data:
        return f"({data.get('id')}: {str(data.get('message', ''))[:200]})"
    return ""
