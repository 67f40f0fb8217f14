"""The job and its two schedules: the month just closed, and the open month every day."""

from __future__ import annotations

import dagster as dg

from pipeline.months import month_of, previous_month

INVOICES_JOB = "invoices_job"


def invoices_job(partitions: dg.PartitionsDefinition):
    """Every asset: the month assets of the months selected, and the inventory (unpartitioned)
    once: what the schedules, `make run` and backfills run."""
    return dg.define_asset_job(
        INVOICES_JOB,
        selection=dg.AssetSelection.all(),
        partitions_def=partitions,
        description=(
            "Fetch, normalize and load the selected months' bills, and one snapshot of the "
            "inventory."
        ),
        # The daemon fails a run still going after 4 h: one whose process was killed holds the
        # warehouse pool until then (dagster.yaml, run_monitoring).
        tags={"dagster/max_runtime": str(4 * 3600)},
    )


@dg.schedule(
    job_name=INVOICES_JOB,
    cron_schedule="0 6 4 * *",
    execution_timezone="UTC",
    description="On the 4th, once invoices are issued, load the month that just closed.",
)
def closed_month_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    closed = previous_month(month_of(context.scheduled_execution_time))
    return dg.RunRequest(run_key=closed, partition_key=closed)


@dg.schedule(
    job_name=INVOICES_JOB,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    description="Every morning, refresh the open month from the invoice preview.",
)
def preview_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    when = context.scheduled_execution_time
    return dg.RunRequest(run_key=when.strftime("%Y-%m-%d"), partition_key=month_of(when))
