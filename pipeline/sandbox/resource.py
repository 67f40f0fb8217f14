"""The sandbox as a Dagster resource: each run gets its own sandbox server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.api import DigitalOceanClient
from pipeline.api.client import Log
from pipeline.resources import BillingApiResource
from pipeline.sandbox.server import SandboxServer


class SandboxResource(BillingApiResource):
    """The built-in sandbox API, serving generated sample accounts, in place of DigitalOcean."""

    @contextmanager
    def client(self, log: Log) -> Iterator[DigitalOceanClient]:
        """A client for a sandbox started for this block and stopped after it."""
        with SandboxServer() as sandbox:
            log.warning(
                f"DIGITALOCEAN_TOKEN is not set: using the built-in SANDBOX API at {sandbox.url}. "
                "The data is generated sample data, not your bill."
            )
            with self._build_client(sandbox.url, sandbox.token, log) as api:
                yield api
