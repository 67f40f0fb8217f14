"""The sandbox as a Dagster resource: each run gets its own sandbox server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.api.log import Log
from pipeline.defs.resources import BillingApiResource
from pipeline.sandbox.server import SandboxServer
from pipeline.settings import TOKEN_ENV
from pipeline.teams import Account


class SandboxResource(BillingApiResource):
    """The built-in sandbox API, serving a generated sample team, in place of DigitalOcean."""

    @contextmanager
    def accounts(self, log: Log) -> Iterator[list[Account]]:
        """One sample team's token, on a sandbox started for this block and stopped after it."""
        with SandboxServer() as sandbox:
            log.warning(
                f"{TOKEN_ENV} is not set: using the built-in SANDBOX API at {sandbox.url}. "
                "The data is generated sample data, not your bill."
            )
            with self._accounts(sandbox.url, [sandbox.token], TOKEN_ENV, log) as accounts:
                yield accounts
