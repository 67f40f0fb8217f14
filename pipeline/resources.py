"""Dagster resources: the billing API (DigitalOcean or the sandbox) and the warehouse.

Both API resources expose the same `client(log)` context manager, so assets do not care which
one they were given; `pipeline.definitions.resources_for(settings)` picks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from urllib.parse import urlsplit

import dagster as dg

from pipeline.api import DigitalOceanClient, Pacer, RetryPolicy
from pipeline.api.client import DEFAULT_TIMEOUT, DEFAULT_WORKERS, MAX_PER_PAGE, Log
from pipeline.api.pacing import REQUESTS_PER_HOUR, REQUESTS_PER_MINUTE
from pipeline.settings import (
    DEFAULT_API_URL,
    DEFAULT_WAREHOUSE_PATH,
    SettingsError,
    validate_api_url,
)
from pipeline.warehouse.store import Warehouse

TOKEN_ENV = "DIGITALOCEAN_TOKEN"


class BillingApiResource(dg.ConfigurableResource):
    """What both API resources share: the client's tuning and how a client is built."""

    per_page: int = MAX_PER_PAGE
    max_workers: int = DEFAULT_WORKERS
    timeout_seconds: float = DEFAULT_TIMEOUT
    retry_attempts: int = RetryPolicy.attempts
    requests_per_minute: int = REQUESTS_PER_MINUTE
    requests_per_hour: int = REQUESTS_PER_HOUR

    def client(self, log: Log) -> AbstractContextManager[DigitalOceanClient]:
        """`with api.client(context.log) as client:` a client for one run, closed after it."""
        raise NotImplementedError

    def _build_client(self, url: str, token: str, log: Log) -> DigitalOceanClient:
        return DigitalOceanClient(
            url,
            token,
            per_page=self.per_page,
            timeout=self.timeout_seconds,
            max_workers=self.max_workers,
            retry=RetryPolicy(attempts=self.retry_attempts),
            pacer=Pacer(self.requests_per_minute, self.requests_per_hour),
            log=log,
        )


class DigitalOceanResource(BillingApiResource):
    """The DigitalOcean billing API. Pass the token as `dg.EnvVar("DIGITALOCEAN_TOKEN")` so its
    value never reaches the UI or the run config."""

    token: str
    api_url: str = DEFAULT_API_URL

    @contextmanager
    def client(self, log: Log) -> Iterator[DigitalOceanClient]:
        if not self.token:
            raise SettingsError(f"{TOKEN_ENV} is empty: set it to a token with billing:read")
        url = validate_api_url(self.api_url)
        log.info(f"Using the DigitalOcean API at {urlsplit(url).netloc}")
        with self._build_client(url, self.token, log) as api:
            yield api


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file."""

    path: str = DEFAULT_WAREHOUSE_PATH
    lock_timeout_seconds: float = 120.0

    def open(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout=self.lock_timeout_seconds)
