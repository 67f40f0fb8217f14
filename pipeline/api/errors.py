"""Errors the API client raises; each message names what failed and what to do, never the token."""

from __future__ import annotations


class ApiError(RuntimeError):
    """A request failed for good: the retry policy gave up, or retrying could not help."""

    def __init__(self, message: str, *, path: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.status = status


class AuthError(ApiError):
    """401/403: retrying cannot help; the token or its scope must change."""


class NotFoundError(ApiError):
    """404 for a path the pipeline expected to exist."""


class ResponseTooLargeError(ApiError):
    """A response exceeded the size bound; refusing to buffer it protects memory."""


class IncompleteFetchError(ApiError):
    """What was fetched does not add up: fewer rows than announced, or pages that shifted."""
