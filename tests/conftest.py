"""Shared fixtures: a sandbox API on loopback, a client for it, a fresh warehouse file."""

from collections.abc import Callable, Iterator
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


def new_client(server: SandboxServer, **kwargs) -> DigitalOceanClient:
    """A client for the sandbox with fast retries and no pacing; options override."""
    options = {"retry": FAST_RETRY, "timeout": 2.0, "pacer": Pacer(None, None)}
    return DigitalOceanClient(server.url, server.token, **{**options, **kwargs})


@pytest.fixture
def make_client() -> Callable[..., DigitalOceanClient]:
    return new_client


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[DigitalOceanClient]:
    with new_client(sandbox) as api:
        yield api


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def sandbox_resources(server: SandboxServer, warehouse_path: Path, **api_options) -> dict:
    """The pipeline's resources pointed at a sandbox and a warehouse file."""
    return {
        "digitalocean": DigitalOceanResource(
            token=server.token, api_url=server.url, timeout_seconds=2.0, **api_options
        ),
        "warehouse": WarehouseResource(path=str(warehouse_path), lock_timeout_seconds=10),
    }


@pytest.fixture
def pipeline_resources() -> Callable[..., dict]:
    return sandbox_resources


WAREHOUSE_BEFORE_MIGRATIONS = (
    Path(__file__).parent / "fixtures" / "warehouse_made_before_migrations.duckdb"
)


@pytest.fixture
def old_warehouse(tmp_path: Path) -> Path:
    """A copy of a warehouse file made before schema migrations existed (tests/fixtures)."""
    path = tmp_path / "old_warehouse.duckdb"
    path.write_bytes(WAREHOUSE_BEFORE_MIGRATIONS.read_bytes())
    return path
