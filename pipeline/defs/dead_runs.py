"""The dead-run sensor: a run whose process is gone is marked failed, and the queue moves on.

The daemon evaluates it every `interval` seconds (60 by default, `DEAD_RUN_CHECK_SECONDS` to
change) in the code server's process, on the code server's host: there it marks failed every
STARTED run tagged with that host (`HOST_TAG`) whose recorded process is gone
(`pipeline.dead_runs`), with `DagsterInstance.report_run_failed` and a message naming the run,
the step it was in and what to do. Dagster's run monitoring already does this for runs its run
launcher started (it asks the code server), but a run started from a terminal or cron has no
launcher to ask. A run of another host is never judged: its process ids mean nothing here.
It is on by default (`DefaultSensorStatus.RUNNING`), so a deployment gets it with the daemon.
"""

from __future__ import annotations

import socket

import dagster as dg

from pipeline.dead_runs import fail_dead_runs


def dead_run_sensor(interval: int) -> dg.SensorDefinition:
    """The sensor, looking every `interval` seconds (`DEAD_RUN_CHECK_SECONDS`, read with the
    other settings)."""

    @dg.sensor(
        name="dead_runs",
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks failed a STARTED run of this host whose process is gone "
        "(a make run or dagster asset materialize killed), so the runs queued behind it start.",
    )
    def dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        failed = fail_dead_runs(context.instance, socket.gethostname())
        for message in failed:
            context.log.warning(message)
        return dg.SkipReason(
            f"marked {len(failed)} dead run(s) failed" if failed else "no dead run on this host"
        )

    return dead_runs
