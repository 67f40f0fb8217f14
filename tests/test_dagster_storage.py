"""The instance's storage (dagster.yaml → pipeline.dagster_storage): Dagster's SQLite files with
the event log kept open. What the UI relies on still holds: another process sees every event
at once and is told of new ones while the run goes on, and plain `storage: sqlite` reads it all."""

import shutil
import sqlite3
import threading
import time
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


@dg.asset(partitions_def=MONTHS, backfill_policy=dg.BackfillPolicy.single_run())
def months_in_one_run(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"loaded {len(context.partition_keys)} months")


def test_a_range_run_writes_its_months_as_batches_and_another_instance_reads_them(
    home, monkeypatch
):
    """The planned and the materialized months come to the storage as batches, one
    transaction per file each; the UI's instance sees every month, as plain SQLite does."""
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    batches: list[list[str]] = []
    store_batch = KeptOpenSqliteEventLogStorage.store_event_batch

    def spy(self, events):
        batches.append([e.dagster_event_type.value for e in events if e.dagster_event_type])
        store_batch(self, events)

    monkeypatch.setattr(KeptOpenSqliteEventLogStorage, "store_event_batch", spy)
    job = dg.Definitions(assets=[months_in_one_run]).resolve_implicit_global_asset_job_def()
    key = dg.AssetKey("months_in_one_run")
    with instance_at(home) as writer, instance_at(home) as reader:
        range_tags = {
            "dagster/asset_partition_range_start": "2026-01",
            "dagster/asset_partition_range_end": "2026-03",
        }
        assert job.execute_in_process(instance=writer, tags=range_tags).success
        assert reader.get_materialized_partitions(key) == set(MONTHS.get_partition_keys())
        (run,) = reader.get_runs()
        planned = reader.get_latest_planned_materialization_info(key, "2026-02")
        assert planned is not None and planned.run_id == run.run_id
    assert ["ASSET_MATERIALIZATION_PLANNED"] * 3 in batches
    assert ["ASSET_MATERIALIZATION"] * 3 in batches


@dg.asset(partitions_def=MONTHS, backfill_policy=dg.BackfillPolicy.single_run())
def months_failing(context: dg.AssetExecutionContext) -> None:
    raise RuntimeError("the API is down")


def test_a_failed_range_run_shows_its_months_failed(home, monkeypatch):
    """With its events written as batches, a failed range run still shows each month failed."""
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    job = dg.Definitions(assets=[months_failing]).resolve_implicit_global_asset_job_def()
    range_tags = {
        "dagster/asset_partition_range_start": "2026-01",
        "dagster/asset_partition_range_end": "2026-03",
    }
    with instance_at(home) as writer, instance_at(home) as reader:
        result = job.execute_in_process(instance=writer, tags=range_tags, raise_on_error=False)
        assert not result.success
        status = reader.get_status_by_partition(
            dg.AssetKey("months_failing"), MONTHS.get_partition_keys(), MONTHS
        )
    assert status == dict.fromkeys(MONTHS.get_partition_keys(), dg.AssetPartitionStatus.FAILED)


def test_a_batch_is_written_whole_or_not_at_all(home, monkeypatch):
    """A batch that fails part way leaves nothing behind: Dagster then stores its events one by
    one, and none is written twice."""
    run_id = str(uuid.uuid4())

    def entry(message: str) -> dg.EventLogEntry:
        return dg.EventLogEntry(
            error_info=None,
            level="INFO",
            user_message=message,
            run_id=run_id,
            timestamp=time.time(),
        )

    with instance_at(home) as instance:
        storage = instance.event_log_storage
        store_event = KeptOpenSqliteEventLogStorage.store_event

        def fails_on_the_second(self, event):
            if event.user_message == "second":
                raise sqlite3.OperationalError("disk I/O error")
            store_event(self, event)

        monkeypatch.setattr(KeptOpenSqliteEventLogStorage, "store_event", fails_on_the_second)
        with pytest.raises(sqlite3.OperationalError):
            storage.store_event_batch([entry("first"), entry("second")])
        monkeypatch.setattr(KeptOpenSqliteEventLogStorage, "store_event", store_event)
        assert [e.user_message for e in instance.all_logs(run_id)] == []
        storage.store_event_batch([entry("first"), entry("second")])
        storage.store_event(entry("third"))  # the file's own connection again, after a batch
    with instance_at(home) as reader:
        logged = [e.user_message for e in reader.all_logs(run_id)]
    assert logged == ["first", "second", "third"]


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
