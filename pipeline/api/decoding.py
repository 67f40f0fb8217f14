"""Turning HTTP responses into pages: bounded reads, JSON decoding, the API's error bodies."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import requests

from pipeline.api.errors import ResponseTooLargeError

# Far larger than any real page (200 items are ~100 KB); refusing more protects memory.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class UnreadableBodyError(ValueError):
    """A 200 whose body is not a JSON object and will not become one on the next attempt: an
    HTML page, JSON nested past any real page's depth, a list where an object belongs."""


class TornBodyError(ValueError):
    """A body that starts as a JSON object and does not parse: cut short in transit, so the
    next attempt may be whole."""


@dataclass(frozen=True)
class Page:
    """One response page: the body as text, plus its parsed form. `received` holds the exact
    bytes when they were not valid UTF-8 (the text then has U+FFFD where they were)."""

    path: str
    page: int
    body: str
    data: dict[str, Any] = field(repr=False)
    received: bytes | None = field(default=None, repr=False)

    def records(self, key: str | None) -> list[Any] | None:
        """The rows under `key`, or None when the page has no such list."""
        if key is None:
            return [self.data]
        found = self.data.get(key)
        return found if isinstance(found, list) else None

    @classmethod
    def parse(
        cls, path: str, page: int, body: str, received: bytes | None = None, kind: str = ""
    ) -> Page:
        """Decode a body: TornBodyError when it may be whole next time, UnreadableBodyError
        (naming what it was) when it will not. `kind`: the response's content-type."""
        try:
            data = json.loads(body)
        except RecursionError:
            raise UnreadableBodyError(
                f"JSON nested deeper than Python reads ({sys.getrecursionlimit()} levels)"
            ) from None
        except ValueError:
            if body.lstrip()[:1] == "{":
                raise TornBodyError("a JSON object cut short or malformed") from None
            raise UnreadableBodyError(f"not JSON{_described(kind, body)}") from None
        if not isinstance(data, dict):
            raise UnreadableBodyError(
                f"top-level JSON value is not an object but {type(data).__name__}"
            )
        return cls(path=path, page=page, body=body, data=data, received=received)


def _described(kind: str, body: str) -> str:
    """What a body that is not JSON looked like: its content-type and its first characters."""
    start = " ".join(body.split())[:60]
    said = f" (content-type {kind.split(';')[0].strip()})" if kind else ""
    return f"{said}, starting {start!r}" if start else f"{said}, empty"


def read_bounded(
    resp: requests.Response, where: str, limit: int = MAX_RESPONSE_BYTES
) -> tuple[str, bytes | None]:
    """The body as text, refusing to buffer more than `limit` bytes; with it the exact bytes
    when they are not valid UTF-8 (raw keeps what was received, the text is read with U+FFFD)."""
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
    received = b"".join(chunks)
    try:
        return received.decode("utf-8"), None
    except UnicodeDecodeError:
        return received.decode("utf-8", errors="replace"), received


def error_summary(body: str) -> str:
    """The API's error id and message, for messages (error bodies never contain the token)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and "id" in data:
        return f"({data.get('id')}: {str(data.get('message', ''))[:200]})"
    return ""
