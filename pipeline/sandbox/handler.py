"""The sandbox's HTTP side: one handler per request, from the socket to `SandboxServer.respond`.

In order: the request is logged (`SandboxServer.requests`), the latency waited, the token's rate
limit counted (401 for no valid token, 429 for a burst), an injected fault acted out, and the
answer sent as JSON with the API's headers (`ratelimit-*`, `x-request-id`).
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from pipeline.sandbox.data import SandboxData
from pipeline.sandbox.faults import Fault, FaultPlan
from pipeline.sandbox.limits import RateLimit

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
JSON = "application/json; charset=utf-8"


class Caller(Protocol):
    """The account a request's token names."""

    token: str
    data: SandboxData


class Sandbox(Protocol):
    """What the handler asks of the server (`SandboxServer`)."""

    latency: float
    rate_limit: RateLimit
    faults: FaultPlan

    def account_for(self, authorization: str) -> Caller | None: ...

    def request_started(self, entry: dict) -> None: ...

    def request_ended(self, entry: dict) -> None: ...

    def respond(
        self, path: str, query: dict[str, list[str]], token: str | None = None
    ) -> tuple[int, Any]: ...


def handler_for(sandbox: Sandbox) -> type[BaseHTTPRequestHandler]:
    """The handler class of one server: every request it takes is answered by `sandbox`."""

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
            account = sandbox.account_for(self.headers.get("Authorization", ""))
            entry = {
                "method": "GET",
                "path": path,
                "query": {k: v[0] for k, v in query.items()},
                "authorized": account is not None,
                "team": account.data.team["uuid"] if account is not None else None,
                "host": self.headers.get("Host"),
                "status": None,
                "started": time.monotonic(),
                "ended": None,
            }
            sandbox.request_started(entry)
            try:
                self._answer(entry, path, query, account.token if account is not None else None)
            finally:
                sandbox.request_ended(entry)

        def _answer(self, entry: dict, path: str, query: dict, token: str | None) -> None:
            if sandbox.latency:
                time.sleep(sandbox.latency)
            admission = sandbox.rate_limit.admit(token)
            self.rate_headers = admission.headers()
            if token is None:
                return self._error(entry, 401)
            if not admission.allowed:
                # A per-minute burst: `retry-after` says when to come back; the hourly budget
                # (`ratelimit-remaining`) is not spent, as on the real API.
                return self._error(entry, 429, {"retry-after": str(admission.retry_after)})
            fault = sandbox.faults.next(path, token)
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
                self._send(entry, 200, body[: len(body) // 2], JSON)
            elif kind == "notjson":
                self._send(entry, 200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            elif kind == "json":
                self._json(entry, 200, fault.body)
            elif kind == "bytes":
                self._send(entry, 200, fault.body, JSON)
            elif kind == "oversize":
                self._oversize(entry)
            else:
                raise ValueError(f"unknown fault {kind!r}")
            return True

        def _oversize(self, entry: dict) -> None:
            entry["status"] = 200
            self.send_response(200)
            self.send_header("Content-Type", JSON)
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
            self._send(entry, status, payload, JSON, headers)

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
            sandbox.request_ended(entry)
            try:
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True

    return Handler
