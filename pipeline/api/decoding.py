"""Turning HTTP responses into pages: bounded reads, JSON decoding, the API's error bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests

from pipeline.api.errors import ResponseTooLargeError

# Far larger than any real page (200 items are ~100 KB); refusing more protects memory.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Page:
    """One response page: the body exactly as received, plus its parsed form."""

    path: str
    page: int
    body: str
    data: dict[str, Any] = field(repr=False)

    def records(self, key: str | None) -> list[Any] | None:
        """The rows under `key`, or None when the page has no such list."""
        if key is None:
            return [self.data]
        found = self.data.get(key)
        return found if isinstance(found, list) else None

    @classmethod
    def parse(cls, path: str, page: int, body: str) -> Page:
        """Decode a body; ValueError (retriable: the next attempt may be whole) if it is not an
        object."""
        try:
            data = json.loads(body)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("top-level JSON value is not an object")
        return cls(path=path, page=page, body=body, data=data)


def read_bounded(resp: requests.Response, where: str, limit: int = MAX_RESPONSE_BYTES) -> str:
    """The body as text, refusing to buffer more than `limit` bytes."""
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


def error_summary(body: str) -> str:
    """The API's error id and message, for messages (error bodies never contain the token)."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and "id" in data:
        return f"({data.get('id')}: {str(data.get('message', ''))[:200]})"
    return ""
