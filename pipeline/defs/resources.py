"""Dagster resources: the billing API (DigitalOcean or the sandbox), the warehouse, and the
alert thresholds.

The settings a resource uses are its own fields, validated whenever it is built (from the
environment or a run's config); their defaults, rules and variables are declared, without
Dagster, in `pipeline.settings.fields`, which each resource here builds on.

Each resource owns its state for one run (`setup_for_execution`): the API resource the teams
it has read, the warehouse its open file and its migration. Both API resources expose the same
`accounts(log)` context manager, so assets do not care which one they were given;
`pipeline.defs.definitions.resources_for(settings)` picks.
"""

from __future__ import annotations

import socket
from abc import abstractmethod
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import dagster as dg
import requests
from pydantic import PrivateAttr, SecretStr

from pipeline.alerts.rules import Thresholds
from pipeline.api import ApiError, DigitalOceanClient, Log, Pacer, RetryPolicy
from pipeline.api.client import (
    DEFAULT_HTTP_CONNECTIONS,
    DEFAULT_TIMEOUT,
    DEFAULT_WORKERS,
    MAX_PER_PAGE,
    fetch_pool,
    shared_session,
)
from pipeline.api.pacing import REQUESTS_PER_HOUR, REQUESTS_PER_MINUTE
from pipeline.dagster_storage import HOST_TAG
from pipeline.settings import (
    ALERT_URLS_ENV,
    DEFAULT_WAREHOUSE_PATH,
    SANDBOX_WAREHOUSE_ENV,
    TOKEN_ENV,
    WAREHOUSE_ENV,
    AlertFields,
    ApiFields,
    DigitalOceanFields,
    RetentionFields,
    Settings,
    SettingsError,
    check_writable,
    split_tokens,
    split_urls,
    token_place,
)
from pipeline.teams import Account, Team
from pipeline.warehouse.publish import Published, PublishError, adopt_single_file, working_file
from pipeline.warehouse.sample_data import (
    SampleDataMixError,
    mark_sample_data,
    mix_message,
    recorded_sample_data,
)
from pipeline.warehouse.store import Warehouse


def record_host(context: dg.InitResourceContext) -> None:
    """Tag the run with the machine its process runs on, unless it is tagged (`make run` tags
    its runs when it creates them): `dagster asset materialize`, a run the daemon launched. The
    dead-run sensor and `make doctor` judge a run's recorded process only on that machine."""
    run = context.dagster_run
    if context.instance is not None and run is not None and HOST_TAG not in run.tags:
        context.instance.add_run_tags(run.run_id, {HOST_TAG: socket.gethostname()})


class BillingApiResource(ApiFields, dg.ConfigurableResource):
    """What both API resources share: the client's tuning, how a client is built, and the
    teams read in this run (one `GET /v2/account` per team and run, not per step);
    `team_workers` (TEAM_WORKERS) is a field of `ApiFields`."""

    per_page: int = MAX_PER_PAGE
    max_workers: int = DEFAULT_WORKERS
    timeout_seconds: float = DEFAULT_TIMEOUT
    retry_attempts: int = RetryPolicy.attempts
    requests_per_minute: int = REQUESTS_PER_MINUTE
    requests_per_hour: int = REQUESTS_PER_HOUR
    # The length of the "minute" the per-minute limit counts in: 60 s against the API; shorter
    # only against a sandbox whose minute is shortened too, so tests of pacing take seconds.
    minute_seconds: float = 60.0
    # Connections to the API host for all teams together: one pool shared by every team's
    # client (each still sends its own token and keeps its own pacer).
    http_connections: int = DEFAULT_HTTP_CONNECTIONS

    _teams: dict[int, Team | ApiError] = PrivateAttr(default_factory=dict)

    # Whether this API serves generated sample data (the built-in sandbox), which every place
    # showing its rows says.
    sample_data: ClassVar[bool] = False

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._teams = {}

    @property
    def known_teams(self) -> dict[int, Team | ApiError]:
        """The teams read in this run, by the token's place in the list (never the token), or
        why a token could not read its team: asked once per run, not once per step."""
        return self._teams

    @abstractmethod
    def accounts(self, log: Log) -> AbstractContextManager[list[Account]]:
        """`with api.accounts(context.log) as accounts:` one client per configured token (each
        its own pacer: rate limits are per token), closed after the run."""

    @contextmanager
    def client(self, log: Log) -> Iterator[DigitalOceanClient]:
        """The first token's client alone (checks and tools that read one team)."""
        with self.accounts(log) as accounts:
            yield accounts[0].client

    def _build_client(
        self,
        url: str,
        token: str,
        log: Log,
        token_name: str = TOKEN_ENV,
        session: requests.Session | None = None,
        pool: Executor | None = None,
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
            session=session,
            pool=pool,
        )

    @contextmanager
    def _accounts(
        self, url: str, tokens: list[str], token_env: str, log: Log
    ) -> Iterator[list[Account]]:
        with ExitStack() as stack:
            session = stack.enter_context(shared_session(self.http_connections))
            pool = stack.enter_context(fetch_pool(self.http_connections))
            accounts = []
            for position, token in enumerate(tokens, start=1):
                place = token_place(position, token_env)
                client = stack.enter_context(
                    self._build_client(url, token, log, place, session, pool)
                )
                accounts.append(Account(position, place, client))
            yield accounts


class DigitalOceanResource(BillingApiResource, DigitalOceanFields):
    """The DigitalOcean billing API at `api_url` (DIGITALOCEAN_API_URL, a field of
    `DigitalOceanFields`). Pass the token(s) as `dg.EnvVar("DIGITALOCEAN_TOKENS")` (or
    `DIGITALOCEAN_TOKEN`) so no value ever reaches the UI or the run config; `token_env` names
    the variable in messages. Several tokens are separated by commas, one per team."""

    token: str
    token_env: str = TOKEN_ENV

    _announced: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        self._announced = False

    @contextmanager
    def accounts(self, log: Log) -> Iterator[list[Account]]:
        tokens = split_tokens(self.token or "")
        if not tokens:
            raise SettingsError(
                f"{self.token_env} is empty: set it to a token with billing:read and account:read"
            )
        url = self.api_url  # validated with the resource
        if not self._announced:  # once per run, not once per step
            teams = f"{len(tokens)} tokens, one per team" if len(tokens) > 1 else "one token"
            log.info(f"Using the DigitalOcean API at {urlsplit(url).netloc} with {teams}")
            self._announced = True
        with self._accounts(url, tokens, self.token_env, log) as accounts:
            yield accounts


class WarehouseResource(RetentionFields, dg.ConfigurableResource):
    """The warehouse: the loader's working file, and the analysts' file it publishes.

    `path` is the file people open (read-only, at any moment): `WAREHOUSE_PATH`, or
    `SANDBOX_WAREHOUSE_PATH` for the sandbox's sample data; the loader writes `working_path`
    (default: `warehouse.working.duckdb` beside it). When a run starts, the working file is
    brought up to date once (a single-file warehouse from before becomes it, no row lost) and,
    when `sample_data` is set, marked as sample or real, or refused when it holds the other
    kind; every step that wrote publishes it to `path` as it ends (`publishing`). `raw_keep`
    (RAW_KEEP, a field of `RetentionFields`): older raw fetches kept per team × month.
    """

    path: str = DEFAULT_WAREHOUSE_PATH
    working_path: str | None = None
    lock_timeout_seconds: float = 120.0
    # True: the built-in sandbox's file; False: teams read with a token; None: not checked (a
    # file a test or tool names itself).
    sample_data: bool | None = None

    _store: Warehouse | None = PrivateAttr(default=None)
    _failed: str | None = PrivateAttr(default=None)  # the last publication error logged

    @property
    def published_file(self) -> Path:
        return Path(self.path)

    @property
    def working_file(self) -> Path:
        return Path(self.working_path) if self.working_path else working_file(Path(self.path))

    @property
    def place(self) -> str:
        """The file as messages name it: its variable and path."""
        name = SANDBOX_WAREHOUSE_ENV if self.sample_data else WAREHOUSE_ENV
        return f"{name} {self.path!r}"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        record_host(context)
        name = SANDBOX_WAREHOUSE_ENV if self.sample_data else WAREHOUSE_ENV
        # Settings accept a read-only folder (readers need no more); a run writes, so it asks.
        check_writable(self.published_file, self.working_file, name)
        # Refused before anything is written when the file holds the other kind of data.
        held = recorded_sample_data(self.published_file, self.working_file)
        if self.sample_data is not None and held is not None and held != self.sample_data:
            raise SampleDataMixError(f"{mix_message(held, self.place)} Nothing was written.")
        # A single-file warehouse from before becomes the working file (its rows are published
        # by the run's first step, with the views the migration rebuilds).
        adopt_single_file(self.published_file, self.working_file)
        self._store = Warehouse(
            self.working_file, lock_timeout=self.lock_timeout_seconds, raw_keep=self.raw_keep
        )
        self._store.migrate()
        if self.sample_data is not None:  # the migration may have marked an older file
            mark_sample_data(self._store, self.sample_data, self.place)
        self._failed = None

    def publish(self, log: Log) -> Published | None:
        """Publish what this run wrote since the last publication, if anything: called at the
        end of every step that uses the warehouse, so a failed publication is a failed step
        (`PublishError`, naming the file and the cause), not a line in a teardown that leaves
        the run green. Readers see the previous file or this one, never a mix."""
        store = self._store
        if store is None or not store.changed:
            return None
        try:
            done = store.publish(self.published_file)
        except PublishError as exc:
            if str(exc) != self._failed:  # once per run, not once per step that meets it
                log.error(str(exc))
                self._failed = str(exc)
            raise
        # One per step that wrote: DEBUG, so the console is not a list of them (the UI shows it).
        log.debug(
            f"published {done.path} ({done.tables} tables, {done.bytes / 2**20:.1f} MiB) "
            f"in {done.seconds:.2f}s: new connections see this run's data"
        )
        return done

    @contextmanager
    def publishing(self, log: Log) -> Iterator[Warehouse]:
        """A step's use of the warehouse, published when it ends. A step that fails still
        publishes what it committed (other teams' months); should that publication fail too,
        it is logged and the step's own error is the one raised."""
        try:
            yield self.store
        except BaseException:
            with suppress(PublishError):  # already logged by publish()
                self.publish(log)
            raise
        self.publish(log)

    @property
    def store(self) -> Warehouse:
        """The run's working file; one object, so the teams' threads share its lock."""
        if self._store is None:  # used outside a run (a test building it by hand)
            self.setup_for_execution(dg.build_init_resource_context())
        assert self._store is not None
        return self._store

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """The working file held open for a unit of steps (`Warehouse.session`)."""
        with self.store.session() as store:
            yield store


class AlertsResource(AlertFields, dg.ConfigurableResource):
    """The alert thresholds and destinations: the thresholds are `AlertFields`' (amounts as
    decimal strings, as Dagster's config holds no Decimal); `ALERT_URLS` comes in as an EnvVar,
    so no URL ever reaches the UI or the run config."""

    alert_urls: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertsResource:
        return cls(
            **settings.alerts.model_dump(),
            alert_urls=dg.EnvVar(ALERT_URLS_ENV) if settings.alert_urls else None,
        )

    def thresholds(self) -> Thresholds:
        return Thresholds.of(self)

    def destinations(self) -> list[SecretStr]:
        """ALERT_URLS, one secret each (validated with the settings)."""
        return [SecretStr(url) for url in split_urls(self.alert_urls or "")]
