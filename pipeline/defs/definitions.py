"""Everything Dagster loads, built from the settings when Dagster loads it (never at import)."""

from __future__ import annotations

import sys

import dagster as dg

from pipeline.defs.alert_checks import alerts_checks, idle_checks
from pipeline.defs.assets import build_assets, source_asset
from pipeline.defs.checks import CHECKS, checks_step
from pipeline.defs.dead_runs import dead_run_sensor
from pipeline.defs.freshness import freshness_checks, freshness_job, freshness_schedule
from pipeline.defs.logs import console_logger, use_short_console
from pipeline.defs.partitions import monthly_partitions
from pipeline.defs.resources import (
    AlertsResource,
    BillingApiResource,
    DigitalOceanResource,
    WarehouseResource,
)
from pipeline.defs.sandbox import SandboxResource
from pipeline.defs.schedules import closed_month_schedule, invoices_job, preview_refresh_schedule
from pipeline.settings import Settings, SettingsError, load_settings
from pipeline.sources import Source


def resources_for(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The real API when tokens are set (one per team), else the built-in sandbox; the
    warehouse; the alert thresholds. The fake is chosen here and nowhere else.

    The tokens are read from the environment at launch (an EnvVar), never stored here."""
    api: BillingApiResource
    if settings.tokens:
        api = DigitalOceanResource(
            token=dg.EnvVar(settings.token_env),
            token_env=settings.token_env,
            **settings.digitalocean.model_dump(),
            **settings.api.model_dump(),
        )
    else:
        api = SandboxResource(**settings.api.model_dump())
    return {
        "digitalocean": api,
        # The sandbox's sample data and real teams each have a file of their own.
        "warehouse": WarehouseResource(
            path=str(settings.warehouse),
            **settings.retention.model_dump(),
            sample_data=settings.sample_data,
        ),
        "alerts": AlertsResource.from_settings(settings),
    }


def source_defs(
    source: Source, partitions: dg.PartitionsDefinition | None = None
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """One source's step and, when it declares checks, its checks' step: what a run of that
    source alone materializes."""
    return [source_asset(source, partitions), *([checks_step(source)] if source.checks else [])]


def build_defs(settings: Settings) -> dg.Definitions:
    partitions = monthly_partitions(settings.start_period)
    return dg.Definitions(
        assets=build_assets(partitions),
        asset_checks=[*CHECKS, freshness_checks, alerts_checks, idle_checks],
        jobs=[invoices_job(partitions), freshness_job],
        schedules=[closed_month_schedule, preview_refresh_schedule, freshness_schedule],
        sensors=[dead_run_sensor(settings.dead_run_check_seconds)],
        resources=resources_for(settings),
        loggers={"console": console_logger},
        # One process per run: steps share the DuckDB file serially, with no per-step startup.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Validated settings (environment, then .env) pick the real API or the sandbox. A bad
    setting is said first, in one line, before Dagster's own report of the failed load. Runs
    that name no logger print the short console (`logs.use_short_console`)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise
    use_short_console()
    return build_defs(settings)
