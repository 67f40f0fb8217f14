"""Dagster resources: the billing API and the warehouse, configured from the environment."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


class DigitalOceanResource(dg.ConfigurableResource):
    """The DigitalOcean billing API. Without a token, the built-in sandbox API stands in."""

    token: str | None = None
    api_url: str = DEFAULT_API_URL
    per_page: int = MAX_PER_PAGE
    max_workers: int = DEFAULT_WORKERS
    timeout_seconds: float = DEFAULT_TIMEOUT
    retry_attempts: int = RetryPolicy.attempts
    requests_per_minute: int = REQUESTS_PER_MINUTE
    requests_per_hour: int = REQUESTS_PER_HOUR

    @contextmanager
    def client(self, log: Log) -> Iterator[DigitalOceanClient]:
        """An API client for one run; starts and stops the sandbox when no token is set."""
        sandbox = None
        if self.token:
            url, token = validate_api_url(self.api_url), self.token
            log.info(f"Using the DigitalOcean API at {urlsplit(url).netloc}")
        else:
            if validate_api_url(self.api_url) != DEFAULT_API_URL:
                raise SettingsError(
                    "DIGITALOCEAN_API_URL is set but DIGITALOCEAN_TOKEN is not: set the token "
                    "(scope billing:read) or unset the URL to use the built-in sandbox"
                )
            from pipeline.sandbox import SandboxServer

            sandbox = SandboxServer()
            sandbox.start()
            url, token = sandbox.url, sandbox.token
            log.warning(
                f"DIGITALOCEAN_TOKEN is not set: using the built-in SANDBOX API at {url}. "
                "The data is generated sample data, not your bill."
            )
        client = DigitalOceanClient(
            url,
            token,
            per_page=self.per_page,
            timeout=self.timeout_seconds,
            max_workers=self.max_workers,
            retry=RetryPolicy(attempts=self.retry_attempts),
            pacer=Pacer(self.requests_per_minute, self.requests_per_hour),
            log=log,
        )
        try:
            yield client
        finally:
            client.close()
            if sandbox is not None:
                sandbox.stop()


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file."""

    path: str = DEFAULT_WAREHOUSE_PATH
    lock_timeout_seconds: float = 120.0

    def open(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout=self.lock_timeout_seconds)


def _env_or(name: str, default: str) -> str | dg.EnvVar:
    """An EnvVar when the variable is set (its value stays out of the UI), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    if os.environ.get("DIGITALOCEAN_API_URL"):
        validate_api_url(os.environ["DIGITALOCEAN_API_URL"])
    return {
        "digitalocean": DigitalOceanResource(
            token=dg.EnvVar("DIGITALOCEAN_TOKEN") if os.environ.get("DIGITALOCEAN_TOKEN") else None,
            api_url=_env_or("DIGITALOCEAN_API_URL", DEFAULT_API_URL),
        ),
        "warehouse": WarehouseResource(path=_env_or("WAREHOUSE_PATH", DEFAULT_WAREHOUSE_PATH)),
    }
