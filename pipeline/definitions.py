"""Everything Dagster loads, in one place."""

from __future__ import annotations

import dagster as dg

from pipeline.alerts import ALERT_CHECKS
from pipeline.assets import ASSETS
from pipeline.checks import CHECKS
from pipeline.freshness import FRESHNESS_CHECKS, freshness_job, freshness_schedule
from pipeline.resources import BillingApiResource, DigitalOceanResource, WarehouseResource
from pipeline.sandbox.resource import SandboxResource
from pipeline.schedules import closed_month_schedule, invoices_job, preview_refresh_schedule
from pipeline.settings import Settings, get_settings


def resources_for(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The real API when tokens are set (one per team), else the built-in sandbox; and the
    warehouse.

    The tokens are read from the environment at launch (an EnvVar), never stored here."""
    api: BillingApiResource
    if settings.tokens:
        api = DigitalOceanResource(
            token=dg.EnvVar(settings.token_env),
            token_env=settings.token_env,
            api_url=settings.api_url,
        )
    else:
        api = SandboxResource()
    warehouse = WarehouseResource(path=str(settings.warehouse_path), raw_keep=settings.raw_keep)
    return {"digitalocean": api, "warehouse": warehouse}


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=[*CHECKS, *FRESHNESS_CHECKS, *ALERT_CHECKS],
    jobs=[invoices_job, freshness_job],
    schedules=[closed_month_schedule, preview_refresh_schedule, freshness_schedule],
    # Validated settings (environment, then .env) pick the real API or the sandbox.
    resources=resources_for(get_settings()),
    # One process per run: steps share the DuckDB file serially, with no per-step startup cost.
    executor=dg.in_process_executor,
)
