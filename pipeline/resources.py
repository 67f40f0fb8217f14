"""Dagster resources: the billing API (DigitalOcean or the sandbox) and the warehouse.

Both API resources expose the same `client(log)` context manager, so assets do not care which
one they were given; `pipeline.definitions.resources_for(settings)` picks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from urllib.parse import urlsplit

import dagster as dg

from pipeline.api import DigitalOceanClient, Pacer, RetryPolicy
from pipeline.api.client import DEFAULT_TIMEOUT, DEFAULT_WORKERS, MAX_PER_PAGE, Log
from pipeline.api.pacing import REQUESTS_PER_HOUR, REQUESTS_PER_MINUTE
from pipeline.settings import (
    DEFAULT_API_URL,
    DEFAULT_RAW_KEEP,
    DEFAULT_WAREHOUSE_PATH,
    TOKEN_ENV,
    SettingsError,
    split_tokens,
    token_place,
    validate_api_url,
)
from pipeline.teams import Account
from pipeline.warehouse.store import Warehouse


class BillingApiResource(dg.ConfigurableResource):
    """What both API resources share: the client's tuning and how a client is built."""

    per_page: int = MAX_PER_PAGE
    max_workers: int = DEFAULT_WORKERS
    timeout_seconds: float = DEFAULT_TIMEOUT
    retry_attempts: int = RetryPolicy.attempts
    requests_per_minute: int = REQUESTS_PER_MINUTE
    requests_per_hour: int = REQUESTS_PER_HOUR
    # The length of the "minute" the per-minute limit counts in: 60 s against the API; shorter
    # only against a sandbox whose minute is shortened too, so tests of pacing take seconds.
    minute_seconds: float = 60.0

    def accounts(self, log: Log) -> AbstractContextManager[list[Account]]:
        """`with api.accounts(context.log) as accounts:` one client per configured token (each
        its own pacer: rate limits are per token), closed after the run."""
        raise NotImplementedError

    @contextmanager
    def client(self, log: Log) -> Iterator[DigitalOceanClient]:
        """The first token's client alone (checks and tools that read one team)."""
        with self.accounts(log) as accounts:
            yield accounts[0].client

    def _build_client(
        self, url: str, token: str, log: Log, token_name: str = TOKEN_ENV
    ) -> DigitalOceanClient:
        return DigitalOceanClient(
            url,
            token,
            per_page=self.per_page,
            timeout=self.timeout_seconds,
            max_workers=self.max_workers,
            retry=RetryPolicy(attempts=self.retry_attempts),
            pacer=Pacer(
                self.requests_per_minute, self.requests_per_hour, minute_seconds=self.minute_seconds
            ),
            log=log,
            token_name=token_name,
        )

    @contextmanager
    def _accounts(
        self, url: str, tokens: list[str], token_env: str, log: Log
    ) -> Iterator[list[Account]]:
        with ExitStack() as stack:
            accounts = []
            for position, token in enumerate(tokens, start=1):
                place = token_place(position, token_env)
                client = stack.enter_context(self._build_client(url, token, log, place))
                accounts.append(Account(position, place, client))
            yield accounts


class DigitalOceanResource(BillingApiResource):
    """The DigitalOcean billing API. Pass the token(s) as `dg.EnvVar("DIGITALOCEAN_TOKENS")` (or
    `DIGITALOCEAN_TOKEN`) so no value ever reaches the UI or the run config; `token_env` names
    the variable in messages. Several tokens are separated by commas, one per team."""

    token: str
    token_env: str = TOKEN_ENV
    api_url: str = DEFAULT_API_URL

    @contextmanager
    def accounts(self, log: Log) -> Iterator[list[Account]]:
        tokens = split_tokens(self.token or "")
        if not tokens:
            raise SettingsError(
                f"{self.token_env} is empty: set it to a token with billing:read and account:read"
            )
        url = validate_api_url(self.api_url)
        teams = f"{len(tokens)} tokens, one per team" if len(tokens) > 1 else "one token"
        log.info(f"Using the DigitalOcean API at {urlsplit(url).netloc} with {teams}")
        with self._accounts(url, tokens, self.token_env, log) as accounts:
            yield accounts


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file."""

    path: str = DEFAULT_WAREHOUSE_PATH
    lock_timeout_seconds: float = 120.0
    raw_keep: int = DEFAULT_RAW_KEEP  # RAW_KEEP: older raw fetches kept per team × month

    def open(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout=self.lock_timeout_seconds, raw_keep=self.raw_keep)

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """The warehouse held open for one step (`Warehouse.session`)."""
        with self.open().session() as store:
            yield store
