"""The sandbox: a real HTTP server on loopback that speaks the DigitalOcean billing API.

It serves `SandboxData` with the API's paging (per_page default 20, max 200 or a lower cap,
`links.pages`, `meta.total`, the three single-page shapes), auth errors, rate-limit headers and
429s, and can inject faults per path so retries and failures are tested over real sockets.

Endpoints: the invoice list, an invoice's items (`preview` too) and its summary; the billing
history (paged like the invoice list, `meta.total` optional), the balance, `GET /v2/account`
(the team) and Billing Insights, whose pages are `{data_points, total_items, total_pages,
current_page}` with no links or meta and, as the live API sends them, the counters as strings.
A token's scopes decide what it may read: 403 `forbidden` without `billing:read` on the billing
endpoints, or without `account:read` on `/v2/account`.

The resource inventory (`pipeline.sandbox.inventory`): droplets, volumes, Kubernetes clusters,
databases (one unpaged list, as the spec has it), load balancers, reserved IPs, snapshots, projects
and each project's resources, each behind the scope the spec names (`droplet:read`,
`block_storage:read`, …, `reserved_ip:read`, `snapshot:read`).

Several teams: DigitalOcean bills each team apart and every token belongs to one team, so the
sandbox serves one account per token. The first is `(token, data)`; `teams={token: data}` or
`add_team()` adds more, and each token sees only its own account on every endpoint (another team's
invoice is 404, another team's Insights URN too). Rate limits count per token, as the API's do;
`revoke(token)` makes a token answer 401 like an unknown one. `build_teams(n)` gives n distinct
sample accounts keyed `sandbox-token`, `sandbox-token-2`, …, ready for
`SandboxServer.with_teams(build_teams(3), **options)`.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.sandbox.data import SandboxData, build_dataset
from pipeline.sandbox.faults import Fault
from pipeline.sandbox.teams import ACCOUNT_USER

LIST = re.compile(r"^/v2/customers/my/invoices/?$")
ITEMS = re.compile(r"^/v2/customers/my/invoices/([^/]+)/?$")
SUMMARY = re.compile(r"^/v2/customers/my/invoices/([^/]+)/summary/?$")
HISTORY = re.compile(r"^/v2/customers/my/billing_history/?$")
BALANCE = re.compile(r"^/v2/customers/my/balance/?$")
ACCOUNT = re.compile(r"^/v2/account/?$")
INSIGHTS = re.compile(r"^/v2/billing/([^/]+)/insights/([^/]+)/([^/]+)/?$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PROJECT_RESOURCES = re.compile(r"^/v2/projects/([^/]+)/resources/?$")
# The inventory lists: path → (record key, scope). Databases are not paged in the spec.
INVENTORY = {
    "/v2/droplets": ("droplets", "droplet:read"),
    "/v2/volumes": ("volumes", "block_storage:read"),
    "/v2/kubernetes/clusters": ("kubernetes_clusters", "kubernetes:read"),
    "/v2/databases": ("databases", "database:read"),
    "/v2/load_balancers": ("load_balancers", "load_balancer:read"),
    "/v2/projects": ("projects", "project:read"),
    "/v2/reserved_ips": ("reserved_ips", "reserved_ip:read"),
    "/v2/snapshots": ("snapshots", "snapshot:read"),
}
UNPAGED = frozenset({"databases"})
# Billing Insights answers at most this many days from start_date to end_date.
INSIGHTS_MAX_DAYS = 31
DEFAULT_SCOPES = frozenset(
    {"billing:read", "account:read", *(scope for _, scope in INVENTORY.values())}
)
ERRORS = {
    400: ("bad_request", "The request was malformed."),
    401: ("unauthorized", "Unable to authenticate you."),
    403: ("forbidden", "You do not have access for the attempted action."),
    404: ("not_found", "The resource you requested could not be found."),
    429: ("too_many_requests", "API rate limit exceeded."),
    500: ("server_error", "Unexpected server-side error"),
    502: ("server_error", "Bad gateway"),
    503: ("server_error", "Service unavailable"),
}
SHAPES = ("none", "empty", "empty_pages")
HOURLY_LIMIT = 5000


@dataclass
class _Account:
    """One token and the team account it reads; `revoked` answers it 401 from then on."""

    token: str
    data: SandboxData
    scopes: frozenset[str]
    revoked: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class SandboxServer:
    """Start with `with SandboxServer() as sb:`; `sb.url` and `sb.token` configure a client."""

    def __init__(
        self,
        data: SandboxData | None = None,
        *,
        token: str = "sandbox-token",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        requests_per_minute: int | None = None,
        link_base: str | None = "https://api.digitalocean.com",
        max_per_page: int = 200,
        single_page_shape: str = "rotate",
        minute_seconds: float = 60.0,
        error_rate: float = 0.0,
        seed: int = 0,
        scopes: frozenset[str] = DEFAULT_SCOPES,
        string_counters: bool = True,
        history_total: bool = True,
        teams: Mapping[str, SandboxData] | None = None,
        now: datetime | None = None,
    ) -> None:
        if single_page_shape not in (*SHAPES, "rotate"):
            raise ValueError(f"single_page_shape must be one of {SHAPES} or 'rotate'")
        self._lock = threading.Lock()
        # One account per token, in the order added; the first is `token`/`data`/`scopes`.
        self._accounts: dict[str, _Account] = {}
        self._first = token
        # Without `data`, the default account as it stands at `now` (the clock when None).
        first = data if data is not None else build_dataset(now=now)
        self._accounts[token] = _Account(token, first, frozenset(scopes))
        for other, other_data in (teams or {}).items():
            self.add_team(other, other_data)
        self.latency = latency
        self.per_minute = requests_per_minute
        # A server may answer fewer rows per page than asked: the API's cap is 200, and a lower
        # cap here shows whether a client follows the server's pages or trusts its own request.
        self.max_per_page = max_per_page
        # The "per minute" window can be shortened so tests of pacing run in seconds.
        self.minute = minute_seconds
        # A share of requests answered 500/502/503/reset at random (seeded), for soak tests.
        self.error_rate = error_rate
        self._random = random.Random(seed)
        self.single_page_shape = single_page_shape
        # Billing Insights' total_items/total_pages/current_page: strings, as the live API sends
        # them against its spec's integers; False sends integers.
        self.string_counters = string_counters
        # The billing history's `meta.total` is optional in the spec; False sends `meta: {}`,
        # so only `links.pages.next` tells that more pages exist.
        self.history_total = history_total
        self.requests: list[dict[str, Any]] = []
        # Requests being answered right now, and the most seen at once: how concurrent a client was.
        self.in_flight = 0
        self.peak_in_flight = 0
        # The same per team (team uuid → count): whether a client ran two teams side by side.
        self._in_flight_by_team: dict[str, int] = {}
        self.peak_in_flight_by_team: dict[str, int] = {}
        # (path pattern, token or None for every token, behaviours left)
        self._faults: list[tuple[re.Pattern[str], str | None, deque[Fault]]] = []
        # Each token's sliding window of request times (the API limits per token); requests
        # without a valid token share the window under None.
        self._stamps: dict[str | None, deque[float]] = {}
        self._httpd = _Server((host, port), _handler(self))
        # Links point at the real API, as the real API's do; None points them at this server,
        # for clients that follow `next` links (the peer in `make bench`).
        self.link_base = (link_base or self.url).rstrip("/")
        self._thread: threading.Thread | None = None

    @classmethod
    def with_teams(cls, teams: Mapping[str, SandboxData], **options: Any) -> SandboxServer:
        """A server for `{token: data}` in order (e.g. `build_teams(3)`): the first pair is the
        first account (`token`, `data`), the rest are added teams. `options` as for `__init__`."""
        pairs = list(teams.items())
        if not pairs:
            raise ValueError("with_teams needs at least one team")
        (token, data), rest = pairs[0], dict(pairs[1:])
        return cls(data, token=token, teams=rest, **options)

    # -- accounts ---------------------------------------------------------------------------
    @property
    def token(self) -> str:
        """The first account's token."""
        return self._first

    @property
    def tokens(self) -> list[str]:
        """Every account's token in the order added, revoked ones too; the first is `token`."""
        with self._lock:
            return list(self._accounts)

    @property
    def data(self) -> SandboxData:
        """The first account's data; assigning replaces what it serves from the next request."""
        return self._accounts[self.token].data

    @data.setter
    def data(self, value: SandboxData) -> None:
        with self._lock:
            self._accounts[self.token].data = value

    @property
    def scopes(self) -> frozenset[str]:
        """What the first token may read: `billing:read` for every billing endpoint,
        `account:read` for `/v2/account`; a missing scope answers 403 `forbidden`."""
        return self._accounts[self.token].scopes

    @scopes.setter
    def scopes(self, value: frozenset[str]) -> None:
        with self._lock:
            self._accounts[self.token].scopes = frozenset(value)

    def data_for(self, token: str) -> SandboxData:
        """The data the account of `token` serves (revoked or not); KeyError for no account."""
        with self._lock:
            account = self._accounts.get(token)
        if account is None:
            raise KeyError(f"no sandbox account has the token {token!r}")
        return account.data

    def add_team(
        self, token: str, data: SandboxData, scopes: frozenset[str] = DEFAULT_SCOPES
    ) -> None:
        """Serve another team's account to `token`, before or after `start()`."""
        with self._lock:
            if token in self._accounts:
                raise ValueError(f"the token {token!r} already has an account")
            self._accounts[token] = _Account(token, data, frozenset(scopes))

    def revoke(self, token: str) -> None:
        """From the next request on, `token` is answered 401 `unauthorized` as an unknown token
        is: the API forgets a revoked token, it does not say it was revoked."""
        with self._lock:
            account = self._accounts.get(token)
            if account is None:
                raise KeyError(f"no sandbox account has the token {token!r}")
            account.revoked = True

    def _account(self, authorization: str) -> _Account | None:
        """The live account an `Authorization` header names, or None (unknown or revoked)."""
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer":
            return None
        with self._lock:
            account = self._accounts.get(token)
        return None if account is None or account.revoked else account

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SandboxServer:
        # A short poll interval: shutdown() waits up to one interval, and every run stops it.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and bookkeeping -------------------------------------------------------------
    def inject(
        self,
        path_regex: str,
        *actions: int | str | Fault,
        times: int = 1,
        token: str | None = None,
    ) -> None:
        """Queue behaviours for the next requests whose path matches, one per request; with
        `token`, only that token's requests (one team's 500 storm while the others load)."""
        queue = deque(Fault.of(a) for _ in range(times) for a in actions)
        with self._lock:
            self._faults.append((re.compile(path_regex), token, queue))

    def _next_fault(self, path: str, token: str | None = None) -> Fault | None:
        with self._lock:
            for pattern, target, queue in self._faults:
                if queue and (target is None or target == token) and pattern.search(path):
                    return queue.popleft()
            if self.error_rate and self._random.random() < self.error_rate:
                return Fault(self._random.choice(["500", "502", "503", "reset"]))
        return None

    def _end(self, entry: dict) -> None:
        """Stamp a request's end and take it out of the in-flight counts, once."""
        with self._lock:
            if entry["ended"] is not None:
                return
            entry["ended"] = time.monotonic()
            self.in_flight -= 1
            if entry["team"] is not None:
                self._in_flight_by_team[entry["team"]] -= 1

    def _admit(self, token: str | None = None) -> tuple[bool, int, int, int]:
        """Sliding-window rate limit of one token (None: requests without a valid token):
        (allowed, retry_after, remaining, reset_epoch)."""
        now = time.monotonic()
        with self._lock:
            stamps = self._stamps.setdefault(token, deque())
            while stamps and stamps[0] <= now - 3600:
                stamps.popleft()
            in_minute = [s for s in stamps if s > now - self.minute]
            last_minute = len(in_minute) if self.per_minute else 0
            retry_after = 0
            if self.per_minute and last_minute >= self.per_minute:
                oldest = in_minute[-self.per_minute]
                retry_after = math.ceil(oldest + self.minute - now)
            if not retry_after:
                stamps.append(now)
            remaining = max(HOURLY_LIMIT - len(stamps), 0)
            oldest_age = now - stamps[0] if stamps else 0
            reset = int(time.time() + 3600 - oldest_age)
        return not retry_after, max(retry_after, 1), remaining, reset

    # -- responses --------------------------------------------------------------------------
    def _links(self, path: str, page: int, per_page: int, total: int, key: str) -> dict | None:
        last = max(1, math.ceil(total / per_page))
        if last == 1:
            shape = self.single_page_shape
            if shape == "rotate":
                shape = SHAPES[sum(key.encode()) % 3]
            return {"none": None, "empty": {}, "empty_pages": {"pages": {}}}[shape]

        def link(n: int) -> str:
            return f"{self.link_base}{path}?page={n}&per_page={per_page}"

        pages: dict[str, str] = {}
        if page > 1:
            pages["first"], pages["prev"] = link(1), link(page - 1)
        if page < last:
            pages["last"], pages["next"] = link(last), link(page + 1)
        return {"pages": pages}

    def respond(
        self, path: str, query: dict[str, list[str]], token: str | None = None
    ) -> tuple[int, Any]:
        """The API's answer to an authorized GET by `token` (default: the first account):
        (status, JSON body). An error's body is None (the standard message for its status) or
        `{"id", "message"}`."""
        try:
            per_page = min(max(int(query.get("per_page", ["20"])[0]), 1), self.max_per_page)
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            return 400, None
        with self._lock:
            account = self._accounts[self.token if token is None else token]
            data, scopes = account.data, account.scopes
        listed = INVENTORY.get(path.rstrip("/"))
        if ACCOUNT.match(path):
            scope = "account:read"
        elif path.startswith(("/v2/customers/my/", "/v2/billing/")):
            scope = "billing:read"
        elif listed is not None:
            scope = listed[1]
        elif PROJECT_RESOURCES.match(path):
            scope = "project:read"
        else:
            return 404, None
        if scope not in scopes:
            return 403, None
        if listed is not None:
            key = listed[0]
            rows = data.inventory.resources(key)
            if key in UNPAGED:
                return 200, {key: rows}
            return 200, self._paged(path, key, rows, page, per_page, key)
        match = PROJECT_RESOURCES.match(path)
        if match:
            project = unquote(match.group(1))
            if project not in data.inventory.project_resources:
                return 404, None
            rows = data.inventory.project_resources[project]
            return 200, self._paged(path, "resources", rows, page, per_page, project)
        if ACCOUNT.match(path):
            return 200, {"account": {**ACCOUNT_USER, "team": dict(data.team)}}
        if BALANCE.match(path):
            return 200, dict(data.balance)
        if HISTORY.match(path):
            rows = data.billing_history
            body = self._paged(path, "billing_history", rows, page, per_page, "billing_history")
            if not self.history_total:
                body["meta"] = {}
            return 200, body
        match = INSIGHTS.match(path)
        if match:
            return self._insights(data, *(unquote(g) for g in match.groups()), page, per_page)
        if LIST.match(path):
            body = self._paged(path, "invoices", data.invoices, page, per_page, "invoices")
            if data.preview:
                body["invoice_preview"] = data.preview
            return 200, body
        for pattern in (SUMMARY, ITEMS):
            match = pattern.match(path)
            if not match:
                continue
            key = match.group(1)
            if key == "preview" and data.preview:
                key = data.preview["invoice_uuid"]
            if key not in data.items:
                return 404, None
            if pattern is SUMMARY:
                return 200, data.summaries[key]
            return 200, self._paged(path, "invoice_items", data.items[key], page, per_page, key)
        return 404, None

    def _insights(
        self, data: SandboxData, urn: str, start: str, end: str, page: int, per_page: int
    ) -> tuple[int, Any]:
        """Billing Insights: the team's points with `start_date` in [start, end], by date."""
        if urn != data.team_urn:
            return 404, None
        try:
            first, last = (date.fromisoformat(d) if DAY.match(d) else None for d in (start, end))
        except ValueError:
            first = last = None
        if first is None or last is None:
            return 400, {
                "id": "bad_request",
                "message": "start_date and end_date must be dates in YYYY-MM-DD format",
            }
        if last < first or (last - first).days > INSIGHTS_MAX_DAYS:
            return 400, {
                "id": "bad_request",
                "message": f"end_date must be on or after start_date and within "
                f"{INSIGHTS_MAX_DAYS} days of it",
            }
        start, end = first.isoformat(), last.isoformat()
        rows = [
            p
            for p in data.insights
            if start <= p["start_date"] <= end and p["usage_team_urn"] == urn
        ]
        counters = [len(rows), math.ceil(len(rows) / per_page), page]
        total_items, total_pages, current_page = (
            str(n) if self.string_counters else n for n in counters
        )
        return 200, {
            "data_points": rows[(page - 1) * per_page : page * per_page],
            "total_items": total_items,
            "total_pages": total_pages,
            "current_page": current_page,
        }

    def _paged(
        self, path: str, name: str, rows: list, page: int, per_page: int, key: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {name: rows[(page - 1) * per_page : page * per_page]}
        links = self._links(path, page, per_page, len(rows), key)
        if links is not None:
            body["links"] = links
        body["meta"] = {"total": len(rows)}
        return body


def _handler(sandbox: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle's algorithm the body would wait for
        # the client's delayed ACK (~40 ms), a stall the real API does not have.
        disable_nagle_algorithm = True
        server_version = "do-billing-sandbox"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: the request log is kept in `sandbox.requests`."""

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            started = time.monotonic()
            account = sandbox._account(self.headers.get("Authorization", ""))
            team = account.data.team["uuid"] if account is not None else None
            entry = {
                "method": "GET",
                "path": path,
                "query": {k: v[0] for k, v in query.items()},
                "authorized": account is not None,
                "team": team,
                "host": self.headers.get("Host"),
                "status": None,
                "started": started,
                "ended": None,
            }
            with sandbox._lock:
                sandbox.requests.append(entry)
                sandbox.in_flight += 1
                sandbox.peak_in_flight = max(sandbox.peak_in_flight, sandbox.in_flight)
                if team is not None:
                    now = sandbox._in_flight_by_team.get(team, 0) + 1
                    sandbox._in_flight_by_team[team] = now
                    peak = sandbox.peak_in_flight_by_team.get(team, 0)
                    sandbox.peak_in_flight_by_team[team] = max(peak, now)
            try:
                self._answer(entry, path, query, account)
            finally:
                sandbox._end(entry)

        def _answer(self, entry: dict, path: str, query: dict, account: _Account | None) -> None:
            if sandbox.latency:
                time.sleep(sandbox.latency)
            token = account.token if account is not None else None
            allowed, retry_after, remaining, reset = sandbox._admit(token)
            self.rate_headers = {
                "ratelimit-limit": str(HOURLY_LIMIT),
                "ratelimit-remaining": str(remaining),
                "ratelimit-reset": str(reset),
            }
            if account is None:
                return self._error(entry, 401)
            if not allowed:
                # A per-minute burst: `retry-after` says when to come back; the hourly budget
                # (`ratelimit-remaining`) is not spent, as on the real API.
                return self._error(entry, 429, {"retry-after": str(retry_after)})
            fault = sandbox._next_fault(path, token)
            if fault is not None and self._fault(entry, fault, path, query, token):
                return
            status, body = sandbox.respond(path, query, token)
            if status != 200:
                return self._error(entry, status, body=body)
            self._json(entry, 200, body)

        def _fault(
            self, entry: dict, fault: Fault, path: str, query: dict, token: str | None
        ) -> bool:
            """Act out `fault`; False means carry on and serve the real answer."""
            kind = fault.kind
            if kind.isdigit():
                extra = {"retry-after": "1"} if kind == "429" else {}
                self._error(entry, int(kind), extra)
            elif kind == "retry_after":
                self._error(entry, 429, {"retry-after": str(int(fault.seconds))})
            elif kind == "reset":
                entry["status"] = "reset"
                self.close_connection = True
                self.connection.close()
            elif kind == "exhausted":
                self.rate_headers["ratelimit-remaining"] = "0"
                self.rate_headers["ratelimit-reset"] = str(int(time.time() + fault.seconds))
                return False
            elif kind == "stall":
                time.sleep(fault.seconds)
                return False
            elif kind == "truncate":
                body = json.dumps(sandbox.respond(path, query, token)[1]).encode()
                self._send(entry, 200, body[: len(body) // 2], "application/json; charset=utf-8")
            elif kind == "notjson":
                self._send(entry, 200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            elif kind == "json":
                self._json(entry, 200, fault.body)
            elif kind == "bytes":
                self._send(entry, 200, fault.body, "application/json; charset=utf-8")
            elif kind == "oversize":
                self._oversize(entry)
            else:
                raise ValueError(f"unknown fault {kind!r}")
            return True

        def _oversize(self, entry: dict) -> None:
            entry["status"] = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = b" " * (1 << 20)
            try:
                self.wfile.write(b'{"invoice_items": [')
                for _ in range(60):
                    self.wfile.write(chunk)
            except OSError:
                pass

        def _error(
            self, entry: dict, status: int, headers: dict | None = None, body: Any = None
        ) -> None:
            error_id, message = ERRORS.get(status, ("example_error", "some error message"))
            if isinstance(body, dict):
                error_id, message = body.get("id", error_id), body.get("message", message)
            body = {"id": error_id, "message": message, "request_id": str(uuid.uuid4())}
            self._json(entry, status, body, headers)

        def _json(self, entry: dict, status: int, body: Any, headers: dict | None = None) -> None:
            payload = json.dumps(body, ensure_ascii=False).encode()
            self._send(entry, status, payload, "application/json; charset=utf-8", headers)

        def _send(
            self, entry: dict, status: int, payload: bytes, ctype: str, headers: dict | None = None
        ) -> None:
            entry["status"] = status
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", str(uuid.uuid4()))
            for name, value in {**getattr(self, "rate_headers", {}), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            # Ended before the body goes out, so a client holding its answer sees it ended.
            sandbox._end(entry)
            try:
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True

    return Handler
