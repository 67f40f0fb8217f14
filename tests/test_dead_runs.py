"""The dead-run sensor: a run of this host whose process is gone is marked failed with a message
naming the run, its step and what to do; a live run, and a run of another host, are left alone.

Against the repository's instance (SQLite here; the topology test does it in PostgreSQL with
the daemon evaluating the sensor), runs whose processes are real and killed with SIGKILL."""

import signal
import socket

import dagster as dg
import pytest

from pipeline.dagster_storage import HOST_TAG
from pipeline.defs.dead_runs import dead_run_sensor
from pipeline.defs.definitions import defs


def evaluate(home) -> str:
    """One evaluation of the repository's dead-run sensor, as the daemon makes it; its skip
    reason."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dead_run_sensor(interval=60)(dg.build_sensor_context(instance=instance))
    return result.skip_message


def run_of(home, run_id) -> dg.DagsterRun:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def failure_messages(home, run_id) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [
            e.message
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            if e.message
        ]


def test_a_live_run_is_left_and_the_same_run_killed_is_marked_failed(repo_home, live_run):
    run_id, pid, proc = live_run(repo_home)
    assert evaluate(repo_home) == "no dead run on this host"
    assert run_of(repo_home, run_id).status == dg.DagsterRunStatus.STARTED
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert evaluate(repo_home) == "marked 1 dead run(s) failed"
    assert run_of(repo_home, run_id).status == dg.DagsterRunStatus.FAILURE
    host = socket.gethostname()
    assert failure_messages(repo_home, run_id) == [
        f"Run {run_id} of job __ephemeral_asset_job__ was STARTED but its process {pid} on "
        f"{host} is gone (killed: SIGKILL, the OOM killer or a reboot) in step killed. Marked "
        "failed by the dead-run sensor so the runs queued behind it start. Steps it finished "
        "are kept; start it again (`make run`, or Re-execute the run in the UI)."
    ]
    # Once failed, it is no longer looked at.
    assert evaluate(repo_home) == "no dead run on this host"


@pytest.mark.parametrize("tags", [{HOST_TAG: "another-machine.example"}, {}])
def test_a_dead_run_of_another_host_or_none_recorded_is_never_marked(repo_home, killed_run, tags):
    run_id, _ = killed_run(repo_home, tags=tags)
    assert evaluate(repo_home) == "no dead run on this host"
    assert run_of(repo_home, run_id).status == dg.DagsterRunStatus.STARTED


def test_the_code_location_has_the_sensor_running_by_default(monkeypatch):
    monkeypatch.setenv("DEAD_RUN_CHECK_SECONDS", "7")
    sensor = defs().resolve_sensor_def("dead_runs")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 7
