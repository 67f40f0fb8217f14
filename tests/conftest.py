"""Shared fixtures: a sandbox API on loopback, a client for it, a fresh warehouse file, and the
helpers several test modules use (materialize, rows, failure_message, …).

Test modules never import from each other or from this file: what they share is a fixture here.
Helpers that return functions are session-scoped (they hold no state), so module-scoped fixtures
can use them too.
"""

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from pipeline.api import DigitalOceanClient, Pacer, RetryPolicy
from pipeline.assets import source_assets
from pipeline.checks import source_checks
from pipeline.resources import DigitalOceanResource, WarehouseResource
from pipeline.sandbox import SandboxServer
from pipeline.sources import INVOICES
from pipeline.sources.invoices import INVOICE_PATH

FAST_RETRY = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def new_client(server: SandboxServer, **kwargs) -> DigitalOceanClient:
    """A client for the sandbox with fast retries and no pacing; options override."""
    options = {"retry": FAST_RETRY, "timeout": 2.0, "pacer": Pacer(None, None)}
    return DigitalOceanClient(server.url, server.token, **{**options, **kwargs})


@pytest.fixture(scope="session")
def make_client() -> Callable[..., DigitalOceanClient]:
    """`make_client(server, **options)`: a client for `server`, fast retries, no pacing."""
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


@pytest.fixture(scope="session")
def pipeline_resources() -> Callable[..., dict]:
    """`pipeline_resources(server, warehouse_path, **api_options)`: the run's resources."""
    return sandbox_resources


@pytest.fixture(scope="session")
def materialize(
    pipeline_resources: Callable[..., dict],
) -> Callable[..., dg.ExecuteInProcessResult]:
    """`materialize(server, warehouse_path, first, last=None, *, raise_on_error=True,
    assets=None, **kw)`: one in-process run of the months `first`…`last` (one month when `last`
    is None), as the single-run backfill the UI launches. `assets` defaults to the invoices
    source's assets and checks; `kw` goes to `dagster.materialize`."""

    def run(
        server: SandboxServer,
        warehouse_path: Path,
        first: str,
        last: str | None = None,
        *,
        raise_on_error: bool = True,
        assets: Sequence[Any] | None = None,
        **kw: Any,
    ) -> dg.ExecuteInProcessResult:
        if assets is None:
            assets = [*source_assets(INVOICES), *source_checks(INVOICES)]
        tags = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first,
        }
        return dg.materialize(
            assets,
            resources=pipeline_resources(server, warehouse_path),
            tags=tags,
            raise_on_error=raise_on_error,
            **kw,
        )

    return run


@pytest.fixture(scope="session")
def rows() -> Callable[..., list[tuple]]:
    """`rows(path, sql, params=None)`: every row of a query on the warehouse file, read-only."""

    def query(path: Path, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(sql, params).fetchall()

    return query


@pytest.fixture(scope="session")
def failure_message() -> Callable[[dg.ExecuteInProcessResult], str]:
    """`failure_message(result)`: the step failures' messages, with the user error each wraps."""

    def messages(result: dg.ExecuteInProcessResult) -> str:
        found = []
        for event in result.all_events:
            error = event.step_failure_data.error if event.is_step_failure else None
            while error is not None:
                found.append(error.message)
                error = error.cause
        return "\n".join(found)

    return messages


@pytest.fixture(scope="session")
def invoice_of() -> Callable[[SandboxServer, str], dict]:
    """`invoice_of(server, month)`: the month's one final invoice, as the sandbox lists it."""

    def find(server: SandboxServer, month: str) -> dict:
        (invoice,) = [i for i in server.data.invoices if i["invoice_period"] == month]
        return invoice

    return find


@pytest.fixture(scope="session")
def page_body() -> Callable[..., dict]:
    """`page_body(server, uuid, page, per_page=200)`: the JSON body the sandbox serves for
    that page of the invoice's items (to alter and inject)."""

    def body(server: SandboxServer, uuid: str, page: int, per_page: int = 200) -> dict:
        status, answer = server.respond(
            INVOICE_PATH.format(key=uuid), {"page": [str(page)], "per_page": [str(per_page)]}
        )
        assert status == 200
        return answer

    return body


@pytest.fixture(scope="session")
def load_month(materialize: Callable[..., dg.ExecuteInProcessResult]) -> Callable[..., Any]:
    """`load_month(server, warehouse_path, month, **kw)`: materialize one month, never raising."""

    def load(server: SandboxServer, warehouse_path: Path, month: str, **kw: Any):
        return materialize(server, warehouse_path, month, raise_on_error=False, **kw)

    return load


@pytest.fixture(scope="session")
def month_rows(rows: Callable[..., list[tuple]]) -> Callable[[Path, str], list[tuple]]:
    """`month_rows(warehouse_path, month)`: count, sum(amount) and min(loaded_at) of the month's
    items: equal before and after a run exactly when the run changed nothing."""

    def summary(warehouse_path: Path, month: str) -> list[tuple]:
        return rows(
            warehouse_path,
            "SELECT count(*), sum(amount), min(loaded_at) FROM invoice_items "
            "WHERE invoice_period = ?",
            [month],
        )

    return summary


WAREHOUSE_BEFORE_MIGRATIONS = (
    Path(__file__).parent / "fixtures" / "warehouse_made_before_migrations.duckdb"
)


@pytest.fixture
def old_warehouse(tmp_path: Path) -> Path:
    """A copy of a warehouse file made before schema migrations existed (tests/fixtures)."""
    path = tmp_path / "old_warehouse.duckdb"
    path.write_bytes(WAREHOUSE_BEFORE_MIGRATIONS.read_bytes())
    return path
