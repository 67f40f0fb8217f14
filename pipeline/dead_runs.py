"""Runs left STARTED by a process that is gone: found and judged through Dagster's public API.

A run started from a terminal or cron (`make run`, `make backfill`, `dagster asset
materialize`) has no run launcher that can be asked whether its process lives, so when the
process is killed (SIGKILL, the OOM killer, a reboot) Dagster keeps it STARTED, and the
warehouse's one-writer pool counts it until its `dagster/max_runtime`. Two readers judge such
runs here, with one code path for SQLite and PostgreSQL instances: `make doctor` names them,
and the daemon's dead-run sensor (`pipeline.defs.dead_runs`) marks them failed.

A process id means something only on the machine that ran it, and an instance in PostgreSQL
may be shared by several. Dagster records a run's process id (its engine events' metadata) but
not its host, so runs record it as the tag `HOST_TAG` (`make run` when it creates the run, the
warehouse resource when a run starts elsewhere). A run of this host whose process is gone is
dead; a run of another host is never judged from here; a run without the tag whose process is
not here is one this machine cannot tell about.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import dagster as dg

from pipeline.dagster_storage import HOST_TAG


@dataclass(frozen=True)
class StartedRun:
    """A run the instance says is STARTED: the host it recorded (None when it recorded none)
    and the process id of its steps (None before its steps started)."""

    run_id: str
    host: str | None
    pid: int | None


@dataclass(frozen=True)
class Verdict:
    """The STARTED runs whose process is gone from this host, and those this host cannot
    judge (no host recorded, and no live process here)."""

    stuck: list[StartedRun]
    unknown: list[StartedRun]


def alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The process that executes the run's steps, as its first engine event's metadata records
    it (Dagster's `EngineEventData.in_process` and `.multiprocess`)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        value = event.engine_event_data.metadata.get("pid") if event is not None else None
        if value is not None and str(value.value).isdigit():
            return int(str(value.value))
    return None


def started_runs(instance: dg.DagsterInstance) -> list[StartedRun]:
    """Every STARTED run, with its recorded host and process id."""
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return [
        StartedRun(
            r.dagster_run.run_id,
            r.dagster_run.tags.get(HOST_TAG),
            run_pid(instance, r.dagster_run.run_id),
        )
        for r in records
    ]


def judge(runs: list[StartedRun], host: str) -> Verdict:
    """Sort the STARTED runs for `host`: gone from it (stuck), or not knowable from it. The
    host is compared first: another machine's process ids are never looked up here."""
    stuck, unknown = [], []
    for run in runs:
        if run.host is not None and run.host != host:
            continue
        gone = run.pid is None or not alive(run.pid)
        if run.host == host and gone:
            stuck.append(run)
        elif run.host is None and gone:
            unknown.append(run)
    return Verdict(stuck, unknown)


def last_step(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The step the run was in: the last one that started and did not end (else the last
    one that started), None before any step started."""
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_SKIPPED,
    }
    open_steps: list[str] = []
    started: str | None = None
    for entry in instance.all_logs(run_id, of_type=kinds):
        step = entry.step_key
        if entry.dagster_event is None or step is None:
            continue
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            open_steps.append(step)
            started = step
        elif step in open_steps:
            open_steps.remove(step)
    return open_steps[-1] if open_steps else started


def months_of(run: dg.DagsterRun) -> str | None:
    """The month or range of months the run was loading, from its partition tags."""
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return start if start == end else f"{start}…{end}"
    return None


def failure_message(run: dg.DagsterRun, dead: StartedRun, step: str | None) -> str:
    """What the failed run says in the UI and the event log: which run, where, and what to do."""
    where = f"in step {step}" if step else "before its first step"
    months = months_of(run)
    redo = (
        f"load {months} again (`make backfill FROM={months.split('…')[0]} "
        f"TO={months.split('…')[-1]}`, or Re-execute the run in the UI)"
        if months
        else "start it again (`make run`, or Re-execute the run in the UI)"
    )
    return (
        f"Run {dead.run_id} of job {run.job_name} was STARTED but its process {dead.pid} on "
        f"{dead.host} is gone (killed: SIGKILL, the OOM killer or a reboot) {where}. Marked "
        f"failed by the dead-run sensor so the runs queued behind it start. Steps it finished "
        f"are kept; {redo}."
    )


def fail_dead_runs(instance: dg.DagsterInstance, host: str) -> list[str]:
    """Mark failed every STARTED run of `host` whose recorded process is gone; the messages.

    A run without a recorded process yet (its first engine event not written) is left for the
    next look, and each run is read again right before it is marked, so one that ended between
    the listing and the process check keeps its own status."""
    messages = []
    for dead in judge(started_runs(instance), host).stuck:
        if dead.pid is None:
            continue
        run = instance.get_run_by_id(dead.run_id)
        if run is None or run.status != dg.DagsterRunStatus.STARTED:
            continue
        message = failure_message(run, dead, last_step(instance, dead.run_id))
        instance.report_run_failed(run, message)
        messages.append(message)
    return messages
