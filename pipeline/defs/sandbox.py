"""The sandbox as a Dagster resource: each run gets its own sandbox server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, ClassVar

import dagster as dg
from pydantic import PrivateAttr

from pipeline.api.log import Log
from pipeline.defs.resources import BillingApiResource
from pipeline.settings import TOKEN_ENV
from pipeline.teams import Account

if TYPE_CHECKING:  # a run with tokens never starts the sandbox: imported when one is started
    from pipeline.sandbox.server import SandboxServer


def sandbox_notice(url: str) -> str:
    return (
        f"{TOKEN_ENV} is not set: using the built-in SANDBOX API at {url}. "
        "The data is generated sample data, not your bill."
    )


class SandboxResource(BillingApiResource):
    """The built-in sandbox API, serving a generated sample team, in place of DigitalOcean.

    One server per run, started when the run starts (and said so once), stopped when it ends,
    so every step of the run reads the same sample account."""

    _server: SandboxServer | None = PrivateAttr(default=None)
    sample_data: ClassVar[bool] = True

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        super().setup_for_execution(context)
        from pipeline.sandbox.server import SandboxServer

        self._server = SandboxServer().start()
        if context.log is not None:
            context.log.warning(sandbox_notice(self._server.url))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @contextmanager
    def accounts(self, log: Log) -> Iterator[list[Account]]:
        """The sample team's token on the run's sandbox (outside a run: one started for this
        block and stopped after it)."""
        with ExitStack() as stack:
            server = self._server
            if server is None:
                from pipeline.sandbox.server import SandboxServer

                server = stack.enter_context(SandboxServer())
                log.warning(sandbox_notice(server.url))
            with self._accounts(server.url, [server.token], TOKEN_ENV, log) as found:
                yield found
