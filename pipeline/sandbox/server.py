"""The sandbox: a real HTTP server on loopback that speaks the DigitalOcean billing API.

It serves `SandboxData` with the API's paging (per_page default 20, max 200 or a lower cap,
`links.pages`, `meta.total`, the three single-page shapes: `paging.py`), auth errors, rate-limit
headers and 429s (`limits.py`), and can inject faults per path (`faults.py`) so retries and
failures are tested over real sockets. This module holds the accounts and the server's life;
`handler.py` takes each request off the socket and `routes.py` declares every endpoint.

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

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import ThreadingHTTPServer
from typing import Any

from pipeline.sandbox import routes
from pipeline.sandbox.data import SandboxData, build_dataset
from pipeline.sandbox.faults import Fault, FaultPlan
from pipeline.sandbox.handler import handler_for
from pipeline.sandbox.limits import RateLimit
from pipeline.sandbox.paging import SHAPES
from pipeline.sandbox.routes import DEFAULT_SCOPES


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
        # Each token's sliding window and hourly budget; the "minute" can be shortened so tests
        # of pacing run in seconds.
        self.rate_limit = RateLimit(requests_per_minute, minute_seconds)
        # A server may answer fewer rows per page than asked: the API's cap is 200, and a lower
        # cap here shows whether a client follows the server's pages or trusts its own request.
        self.max_per_page = max_per_page
        # Faults queued by `inject`, and a share of requests answered 500/502/503/reset at
        # random (seeded), for soak tests.
        self.faults = FaultPlan(error_rate, seed)
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
        self._httpd = _Server((host, port), handler_for(self))
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

    def account_for(self, authorization: str) -> _Account | None:
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
        self.faults.add(path_regex, actions, times, token)

    def request_started(self, entry: dict) -> None:
        """Log a request (`requests`) and count it in flight, overall and for its team."""
        with self._lock:
            self.requests.append(entry)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            team = entry["team"]
            if team is not None:
                now = self._in_flight_by_team.get(team, 0) + 1
                self._in_flight_by_team[team] = now
                peak = self.peak_in_flight_by_team.get(team, 0)
                self.peak_in_flight_by_team[team] = max(peak, now)

    def request_ended(self, entry: dict) -> None:
        """Stamp a request's end and take it out of the in-flight counts, once."""
        with self._lock:
            if entry["ended"] is not None:
                return
            entry["ended"] = time.monotonic()
            self.in_flight -= 1
            if entry["team"] is not None:
                self._in_flight_by_team[entry["team"]] -= 1

    # -- responses --------------------------------------------------------------------------
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
        found = routes.find(path)
        if found is None:
            return 404, None
        route, parts = found
        if route.scope not in scopes:
            return 403, None
        return route.answer(routes.Call(self, path, parts, data, page, per_page))
