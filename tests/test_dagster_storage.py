"""The instance's storage (dagster.yaml → pipeline.dagster_storage): Dagster's SQLite files with
the event log kept open. What the UI relies on still holds: another process sees every event
at once and is told of new ones while the run goes on, and plain `storage: sqlite` reads it all."""

import shutil
import threading
import uuid
from pathlib import Path

import dagster as dg
import pytest

from pipeline.dagster_storage import KeptOpenSqliteEventLogStorage

REPO = Path(__file__).resolve().parents[1]
MONTHS = dg.StaticPartitionsDefinition(["2026-01", "2026-02", "2026-03"])


@dg.asset(partitions_def=MONTHS)
def months_asset(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"loaded {context.partition_key}")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME with the repository's dagster.yaml (its paths are relative to the cwd)."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def instance_at(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def test_the_repository_instance_uses_the_kept_open_event_log(home):
    with instance_at(home) as instance:
        assert isinstance(instance.event_log_storage, KeptOpenSqliteEventLogStorage)
        assert (home / "data" / "dagster" / "history" / "runs" / "index.db").is_file()


def test_another_instance_is_told_of_events_while_the_run_goes_on(home):
    """The webserver follows a run by watching its file; with the connection kept open the
    events would sit in the WAL file, unseen, until the run ended."""
    run_id = str(uuid.uuid4())
    heard = threading.Event()
    seen_during_run: list[bool] = []

    def on_event(entry: dg.EventLogEntry, _cursor: str) -> None:
        if entry.user_message == "half way":
            heard.set()

    @dg.op
    def slow(context: dg.OpExecutionContext) -> None:
        context.log.info("half way")
        seen_during_run.append(heard.wait(10))

    with instance_at(home) as watcher, instance_at(home) as writer:
        watcher.watch_event_logs(run_id, None, on_event)
        job = dg.GraphDefinition(name="slow_job", node_defs=[slow]).to_job()
        assert job.execute_in_process(instance=writer, run_id=run_id).success
        watcher.end_watch_event_logs(run_id, on_event)
    assert seen_during_run == [True]


def test_a_range_run_is_read_whole_by_another_instance_and_by_plain_sqlite_storage(home):
    defs = dg.Definitions(assets=[months_asset])
    job = defs.resolve_implicit_global_asset_job_def()
    with instance_at(home) as writer, instance_at(home) as reader:
        for month in MONTHS.get_partition_keys():
            assert job.execute_in_process(instance=writer, partition_key=month).success
        # The writer's connections are still open: the reader sees every event regardless.
        key = dg.AssetKey("months_asset")
        assert reader.get_materialized_partitions(key) == set(MONTHS.get_partition_keys())
        assert len(reader.get_runs()) == 3
        runs = [run.run_id for run in reader.get_runs()]
        logged = sorted(
            entry.user_message
            for run_id in runs
            for entry in reader.all_logs(run_id)
            if entry.user_message.startswith("loaded ")
        )
        assert logged == [f"loaded {m}" for m in MONTHS.get_partition_keys()]
    # Back to Dagster's own `storage: sqlite` on the same folder: nothing lost, nothing to migrate.
    (home / "dagster.yaml").write_text("storage:\n  sqlite:\n    base_dir: data/dagster\n")
    with instance_at(home) as plain:
        assert not isinstance(plain.event_log_storage, KeptOpenSqliteEventLogStorage)
        assert plain.get_materialized_partitions(key) == set(MONTHS.get_partition_keys())
        assert len(plain.get_runs()) == 3


def test_wiping_the_instance_closes_its_files_first(home):
    with instance_at(home) as instance:
        job = dg.Definitions(assets=[months_asset]).resolve_implicit_global_asset_job_def()
        assert job.execute_in_process(instance=instance, partition_key="2026-01").success
        instance.wipe()
        assert instance.get_runs() == []
        assert instance.get_materialized_partitions(dg.AssetKey("months_asset")) == set()
        assert job.execute_in_process(instance=instance, partition_key="2026-02").success
        assert instance.get_materialized_partitions(dg.AssetKey("months_asset")) == {"2026-02"}


# -- run monitoring: a run whose process was killed does not stay STARTED ----------------------


def test_the_repository_instance_monitors_runs_and_the_jobs_have_a_runtime_limit(home):
    from pipeline.defs.definitions import defs

    jobs = [defs().resolve_job_def(name) for name in ("invoices_job", "freshness_job")]
    with instance_at(home) as instance:
        assert instance.run_monitoring_enabled
        assert "MONITORING" in instance.get_required_daemon_types()
        # Any run without the tag (`make run`, `dagster asset materialize`) gets this limit.
        default = instance.run_monitoring_max_runtime_seconds
    assert 3600 <= default <= 24 * 3600
    for job in jobs:
        assert 0 < int(job.tags["dagster/max_runtime"]) <= default


def test_a_killed_run_is_marked_failed_by_the_monitoring_daemon(home, monkeypatch, killed_run):
    """The run's process dies without a word; the daemon's monitoring pass, on the repository's
    instance and run launcher, fails it once past its maximum runtime."""
    import logging
    import time

    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.monitoring import execute_run_monitoring_iteration

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    killed_run(home, max_runtime=1)
    with instance_at(home) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED, "left STARTED by the kill"
        time.sleep(1.5)  # past the run's 1 s limit
        with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as workspace:
            list(execute_run_monitoring_iteration(workspace, logging.getLogger("monitor")))
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        messages = [e.message for e in instance.all_logs(run.run_id) if e.message]
    assert any("maximum runtime of 1 seconds" in m for m in messages), messages[-4:]
