"""The job and its two schedules: the month just closed, and the open month every day."""

import dagster as dg

from pipeline.months import month_of, previous_month
from pipeline.partitions import monthly_partitions

invoices_job = dg.define_asset_job(
    "invoices_job",
    selection=dg.AssetSelection.all(),
    partitions_def=monthly_partitions,
    description="Fetch, normalize and load the invoices and items of the selected months.",
    # The daemon fails a run still going after 4 h: one whose process was killed holds the
    # warehouse pool until then (dagster.yaml, run_monitoring).
    tags={"dagster/max_runtime": str(4 * 3600)},
)


@dg.schedule(
    job=invoices_job,
    cron_schedule="0 6 4 * *",
    execution_timezone="UTC",
    description="On the 4th, once invoices are issued, load the month that just closed.",
)
def closed_month_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    closed = previous_month(month_of(context.scheduled_execution_time))
    return dg.RunRequest(run_key=closed, partition_key=closed)


@dg.schedule(
    job=invoices_job,
    cron_schedule="0 7 * * *",
    execution_timezone="UTC",
    description="Every morning, refresh the open month from the invoice preview.",
)
def preview_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    when = context.scheduled_execution_time
    return dg.RunRequest(run_key=when.strftime("%Y-%m-%d"), partition_key=month_of(when))
