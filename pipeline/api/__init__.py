"""The DigitalOcean API over HTTP: client, paging, retry policy, pacing, decoding, errors."""

from pipeline.api.client import DigitalOceanClient, Progress
from pipeline.api.collection import Collection, PageRequest
from pipeline.api.decoding import Page
from pipeline.api.errors import (
    ApiError,
    AuthError,
    IncompleteFetchError,
    NotFoundError,
    ResponseTooLargeError,
)
from pipeline.api.log import Log
from pipeline.api.pacing import Pacer
from pipeline.api.paging import COUNTERS, LINKS, SINGLE, Paginator
from pipeline.api.retry import RetryPolicy

__all__ = [
    "COUNTERS",
    "LINKS",
    "SINGLE",
    "ApiError",
    "AuthError",
    "Collection",
    "DigitalOceanClient",
    "IncompleteFetchError",
    "Log",
    "NotFoundError",
    "Pacer",
    "Page",
    "PageRequest",
    "Paginator",
    "Progress",
    "ResponseTooLargeError",
    "RetryPolicy",
]
