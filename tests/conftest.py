"""Shared fixtures: a sandbox API on loopback, a client for it, a fresh warehouse file."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.api import DigitalOceanClient, Pacer, RetryPolicy
from pipeline.resources import DigitalOceanResource, WarehouseResource
from pipeline.sandbox import SandboxServer

FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def make_client(server: SandboxServer, **kwargs) -> DigitalOceanClient:
    options = {"retry": FAST_RETRY, "timeout": 2.0, "pacer": Pacer(None, None)}
    return DigitalOceanClient(server.url, server.token, **{**options, **kwargs})


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[DigitalOceanClient]:
    with make_client(sandbox) as api:
        yield api


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def pipeline_resources(server: SandboxServer, warehouse_path: Path, **api_options) -> dict:
    return {
        "digitalocean": DigitalOceanResource(
            token=server.token, api_url=server.url, timeout_seconds=2.0, **api_options
        ),
        "warehouse": WarehouseResource(path=str(warehouse_path), lock_timeout_seconds=10),
    }
