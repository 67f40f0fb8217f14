"""The DigitalOcean API client: one session, explicit timeouts, the pacer, the retry policy.

It knows HTTP and paging, nothing of invoices, sources or the warehouse. The token is attached
per request to URLs built from the configured base URL only; `links` in responses are read for
page numbers and never requested, and redirects are not followed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from pipeline.api.collection import Collection, PageRequest
from pipeline.api.decoding import (
    MAX_RESPONSE_BYTES,
    Page,
    TornBodyError,
    UnreadableBodyError,
    error_summary,
    read_bounded,
)
from pipeline.api.errors import ApiError, AuthError, NotFoundError
from pipeline.api.log import Log
from pipeline.api.pacing import Pacer
from pipeline.api.paging import SinglePage
from pipeline.api.retry import RetryPolicy, TransientError
from pipeline.settings import validate_api_url

MAX_PER_PAGE = 200
DEFAULT_WORKERS = 8
# Connections to the API host shared by every team of a run (`shared_session`).
DEFAULT_HTTP_CONNECTIONS = 32
DEFAULT_TIMEOUT = 30.0
# A server that keeps saying "next" is not followed past this many pages of one collection.
MAX_PAGES = 10_000
USER_AGENT = "do-billing-pipeline/0.1 (+requests)"
# Workers that sit out the same rate-limit pause would each report it; one line per this many
# seconds is enough for a person following the run.
WAIT_LOG_INTERVAL = 5.0
# How often fetch loops report progress.
PROGRESS_SECONDS = 2.0


FETCH_THREADS = "do-fetch"


def fetch_pool(connections: int) -> ThreadPoolExecutor:
    """Threads for every team's page requests, as many as the shared session has connections:
    more could only wait for one. Each fetch still has at most its client's `max_workers`
    pages in flight."""
    return ThreadPoolExecutor(connections, thread_name_prefix=FETCH_THREADS)


def shared_session(connections: int) -> requests.Session:
    """A session whose pool holds at most `connections` connections to the API host; with
    more threads than that, a request waits for a free connection (`pool_block`) rather than
    opening another, so many teams never mean many sockets."""
    session = requests.Session()
    session.trust_env = False
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    adapter = HTTPAdapter(
        pool_connections=1, pool_maxsize=connections, pool_block=True, max_retries=0
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class Answer:
    """A response as read: its status, its body as text, the exact bytes when they were not
    valid UTF-8, and its content-type."""

    status: int
    body: str
    received: bytes | None
    content_type: str


@dataclass(frozen=True)
class Progress:
    """How progress lines name a fetch: `items: 3/41 invoices complete, …`."""

    name: str
    unit: str = "collection"


class DigitalOceanClient:
    """GETs pages under the pacer and the retry policy, and fetches whole collections at once."""

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
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        log: Log | None = None,
        sleep: Callable[[float], None] = time.sleep,
        token_name: str = "DIGITALOCEAN_TOKEN",
        session: requests.Session | None = None,
        pool: Executor | None = None,
    ) -> None:
        # How messages name the token (never its value): `token 2 of DIGITALOCEAN_TOKENS`.
        self.token_name = token_name
        if not token:
            raise AuthError(f"{token_name} is empty: set it to a token with billing:read")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, got {per_page}")
        self.base_url = validate_api_url(base_url)
        self.host = urlsplit(self.base_url).netloc
        self._auth = {"Authorization": f"Bearer {token}"}
        self.per_page = per_page
        self.timeout = (connect_timeout, timeout)
        self.retry = retry or RetryPolicy()
        self.pacer = pacer or Pacer()
        self.max_response_bytes = max_response_bytes
        self.log: Log = log or logging.getLogger(__name__)
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()
        self._wait_log_lock = threading.Lock()
        self._last_wait_log = (-WAIT_LOG_INTERVAL, "")
        self._sleep = sleep
        self.max_workers = max_workers
        # Several teams' clients share one session (`shared_session`): one bounded pool of
        # connections for every team, each request still with its own token and pacer.
        self._owns_session = session is None
        self.session = session if session is not None else shared_session(max_workers)
        # Several teams' clients may share one pool of fetch threads too (`fetch_pool`): a pool
        # of its own for each fetch call costs a thread start (under a lock every pool of the
        # process shares) per page worker, which at a thousand teams was a third of a step.
        self._pool = pool

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> DigitalOceanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, stat: str) -> None:
        with self._stats_lock:
            setattr(self.stats, stat, getattr(self.stats, stat) + 1)

    # -- one page --------------------------------------------------------------------------
    def get_page(
        self, path: str, params: dict[str, int] | None = None, scope: str = "billing:read"
    ) -> Page:
        """GET one page as JSON, retrying what can succeed later and failing fast on the rest."""
        page = params["page"] if params and "page" in params else 1
        where = f"GET {path}" + (f" page {page}" if params else "")
        for attempt in self.retry.retrying(self.log, lambda: self._count("retries"), self._sleep):
            with attempt:
                return self._get_once(path, params, page, where, scope)
        raise AssertionError("unreachable: the retry policy returns or raises")

    def _get_once(
        self, path: str, params: dict[str, int] | None, page: int, where: str, scope: str
    ) -> Page:
        """One attempt; a 429 waits (on its own budget) and asks again within the attempt."""
        rate_waits = 0
        while True:
            waited, reason = self.pacer.acquire()
            if waited >= 1.0:
                self._log_wait(where, waited, reason)
            self._count("requests")
            try:
                resp = self.session.get(
                    self.base_url + path,
                    params=params,
                    headers=self._auth,
                    timeout=self.timeout,
                    stream=True,
                    allow_redirects=False,
                )
                with resp:
                    body, received = read_bounded(resp, where, self.max_response_bytes)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                raise TransientError(
                    where, f"{type(exc).__name__} (network error or no answer in time)"
                ) from None
            finally:
                self.pacer.release()
            paused = self.pacer.observe(resp.headers)
            if paused is not None and paused >= 1.0:
                self.log.warning(
                    f"{where}: the token's hourly budget is spent (ratelimit-remaining: 0); "
                    f"pausing {paused:.0f}s until ratelimit-reset"
                )
            status = resp.status_code
            if status != 429:
                if received is not None:
                    self.log.warning(
                        f"{where}: the body is not valid UTF-8; raw keeps the bytes as received, "
                        "the text is read with U+FFFD in their place"
                    )
                answer = Answer(status, body, received, resp.headers.get("content-type", ""))
                return self._decode(path, page, where, answer, scope, self.token_name)
            rate_waits += 1
            self._count("rate_limited")
            if rate_waits > self.retry.max_rate_limit_waits:
                raise ApiError(
                    f"{where}: still rate limited (429) after {rate_waits - 1} waits; "
                    "another client may be using the same token's budget",
                    path=path,
                    status=status,
                )
            delay = self.retry.retry_after(resp.headers)
            self.log.warning(f"{where}: rate limited (429); waiting {delay:.1f}s as the API asks")
            self.pacer.pause_for(delay)

    @staticmethod
    def _decode(
        path: str, page: int, where: str, answer: Answer, scope: str, token_name: str
    ) -> Page:
        """A page from a 200, or the error the status means. A torn body is worth another
        attempt; one that is not JSON at all (a proxy's HTML page) or nested past reason is
        not, and says what it was."""
        status, body = answer.status, answer.body
        if status == 200:
            try:
                return Page.parse(path, page, body, answer.received, answer.content_type)
            except TornBodyError as exc:
                raise TransientError(where, f"response is not valid JSON ({exc})") from None
            except UnreadableBodyError as exc:
                raise ApiError(
                    f"{where}: HTTP 200 but the response is {exc}; not retried, as the same "
                    "answer would come again. Is DIGITALOCEAN_API_URL the API (not a proxy's "
                    "page)?",
                    path=path,
                    status=status,
                ) from None
        detail = error_summary(body)
        if status in (401, 403):
            raise AuthError(
                f"{where}: HTTP {status} {detail}. Check {token_name}: it must be a valid "
                f"DigitalOcean API token with the {scope} scope"
                + (f" (this token lacks {scope})." if status == 403 else ".")
                + " `make doctor` checks every token and its scopes.",
                path=path,
                status=status,
            )
        if status == 404:
            raise NotFoundError(f"{where}: HTTP 404 not found", path=path, status=status)
        if status >= 500:
            raise TransientError(where, f"HTTP {status} {detail}".rstrip())
        raise ApiError(
            f"{where}: unexpected HTTP {status} {detail}".rstrip(), path=path, status=status
        )

    def _log_wait(self, where: str, waited: float, reason: str) -> None:
        """One line per pause and reason, not one per worker thread that sat it out."""
        now = time.monotonic()
        with self._wait_log_lock:
            last_at, last_reason = self._last_wait_log
            if reason == last_reason and now - last_at < WAIT_LOG_INTERVAL:
                return
            self._last_wait_log = (now, reason)
        self.log.info(f"{where}: waited {waited:.1f}s for the rate limit: {reason}")

    # -- whole collections -----------------------------------------------------------------
    def fetch(
        self, requests_: Sequence[PageRequest], progress: Progress | None = None
    ) -> list[Collection]:
        """Every page of every request: first pages at once, the rest as each reveals its size.

        Pages the server announces beyond the plan are followed. A failure anywhere cancels what
        is queued and raises; incompleteness is left to `Collection.problems()`, so the caller
        can keep the pages before failing.
        """
        requests_ = list(requests_)
        got: list[dict[int, Page]] = [{} for _ in requests_]
        asked: list[set[int]] = [set() for _ in requests_]
        planned: dict[int, int] = {}
        capped: dict[int, int] = {}
        pending: dict[Future[Page], tuple[int, int]] = {}
        # Pages asked for, not yet handed to the pool: at most `max_workers` of this fetch's
        # pages are in flight at once, on its own pool or on a shared one.
        queued: deque[tuple[int, int]] = deque()
        ticker = _Every(PROGRESS_SECONDS)
        own = self._pool is None
        pool = ThreadPoolExecutor(self.max_workers, FETCH_THREADS) if own else self._pool
        assert pool is not None

        def submit(index: int, number: int) -> None:
            if number in asked[index] or len(asked[index]) >= MAX_PAGES:
                return
            asked[index].add(number)
            queued.append((index, number))

        def start() -> None:
            while queued and len(pending) < self.max_workers:
                index, number = queued.popleft()
                req = requests_[index]
                params = req.paginator.params(number, self.per_page)
                pending[pool.submit(self.get_page, req.path, params, req.scope)] = (index, number)

        for index in range(len(requests_)):
            submit(index, 1)
        try:
            start()
            while pending:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    index, number = pending.pop(future)
                    req = requests_[index]
                    try:
                        page = future.result()
                    except NotFoundError as exc:
                        raise NotFoundError(
                            f"{req.name} {req.missing} ({exc})", path=exc.path, status=404
                        ) from None
                    got[index][number] = page
                    if number == 1:
                        rows = len(page.records(req.records) or [])
                        count = req.paginator.page_count(page, rows, self.per_page) or 1
                        planned[index] = count
                        if count > 1 and rows < self.per_page:
                            capped[index] = rows
                        for n in range(2, count + 1):
                            submit(index, n)
                    nxt = req.paginator.next_page(page)
                    if nxt is not None:
                        submit(index, nxt)
                start()
                if progress is not None and ticker.due(force=not pending):
                    self.log.info(self._progress(progress, requests_, got, planned, asked))
        except BaseException:
            # What is queued is dropped and what is running is waited for, as when each
            # fetch had its own pool: no request of a failed fetch outlives it.
            queued.clear()
            for future in pending:
                future.cancel()
            wait(list(pending))
            raise
        finally:
            if own:
                pool.shutdown(wait=True)
        if capped:
            sizes = sorted(set(capped.values()))
            self.log.info(
                f"the server capped the page size at {', '.join(map(str, sizes))} rows "
                f"(asked for {self.per_page}) on {len(capped)} collection(s); followed its pages"
            )
        return [
            Collection(req, [got[i][n] for n in sorted(got[i])], capped.get(i))
            for i, req in enumerate(requests_)
        ]

    @staticmethod
    def _progress(
        progress: Progress,
        requests_: Sequence[PageRequest],
        got: list[dict[int, Page]],
        planned: dict[int, int],
        asked: list[set[int]],
    ) -> str:
        n = len(got)
        done = sum(1 for i, pages in enumerate(got) if pages and len(pages) == len(asked[i]))
        if all(isinstance(req.paginator, SinglePage) for req in requests_):
            return f"{progress.name}: {done}/{n} fetched"
        fetched = sum(len(pages) for pages in got)
        known = sum(planned.values())
        return (
            f"{progress.name}: {done}/{n} {progress.unit}s complete, {fetched}/{known} pages "
            f"fetched ({len(planned)}/{n} {progress.unit} totals known)"
        )


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
