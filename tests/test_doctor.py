"""`make doctor`: each check against a real sandbox on loopback and real DuckDB files, and the
report `main()` prints, with its exit code."""

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from pipeline.cli.doctor.check import Check
from pipeline.cli.doctor.configuration import check_settings
from pipeline.cli.doctor.instance import check_dagster
from pipeline.cli.doctor.runner import main, report
from pipeline.cli.doctor.tokens import check_api
from pipeline.cli.doctor.warehouse import check_publication, check_warehouse
from pipeline.dagster_storage import HOST_TAG
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.server import DEFAULT_SCOPES
from pipeline.settings import load_settings
from pipeline.sources import INVENTORY
from pipeline.warehouse.migrate import LATEST_VERSION
from pipeline.warehouse.publish import working_file
from pipeline.warehouse.sample_data import mark_sample_data
from pipeline.warehouse.store import Warehouse

SETTINGS_VARIABLES = (
    "DIGITALOCEAN_TOKEN",
    "DIGITALOCEAN_TOKENS",
    "DIGITALOCEAN_API_URL",
    "WAREHOUSE_PATH",
    "SANDBOX_WAREHOUSE_PATH",
    "INVOICE_START_PERIOD",
    "DAGSTER_HOME",
)
HOLD_OPEN = (
    "import duckdb, time, sys; con = duckdb.connect(sys.argv[1]); "
    "print('ok', flush=True); time.sleep(30)"
)


@pytest.fixture
def migrated(warehouse_path: Path) -> Path:
    """A fresh warehouse file at the latest schema version."""
    Warehouse(warehouse_path).migrate()
    return warehouse_path


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with a dagster.yaml that keeps runs under it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"telemetry:\n  enabled: false\nstorage:\n  sqlite:\n    base_dir: {home / 'storage'}\n"
    )
    return home


@pytest.fixture
def doctor_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_home: Path
) -> Iterator[pytest.MonkeyPatch]:
    """A working directory with no `.env`, none of the pipeline's variables set (restored
    afterwards, even those a `.env` loads) and DAGSTER_HOME set."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in SETTINGS_VARIABLES:
        monkeypatch.setenv(name, "")  # so that undo removes whatever is set later
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    yield monkeypatch


@pytest.fixture
def run_doctor(
    doctor_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[], tuple[int, str]]:
    """`run_doctor()`: main()'s exit code and what it printed."""

    def run() -> tuple[int, str]:
        code = main([])
        return code, capsys.readouterr().out

    return run


@pytest.fixture
def point_at(doctor_env: pytest.MonkeyPatch, warehouse_path: Path) -> Callable[..., None]:
    """`point_at(server, token=None)`: the environment set for that sandbox and warehouse."""

    def configure(server: SandboxServer, token: str | None = None) -> None:
        doctor_env.setenv("DIGITALOCEAN_API_URL", server.url)
        doctor_env.setenv("DIGITALOCEAN_TOKEN", server.token if token is None else token)
        doctor_env.setenv("WAREHOUSE_PATH", str(warehouse_path))

    return configure


# -- the token ----------------------------------------------------------------------------------
def test_a_healthy_sandbox_passes_and_names_the_team(sandbox):
    team = sandbox.data.team
    (billing, account, _), found = check_api(sandbox.url, sandbox.token)
    host = sandbox.url.removeprefix("http://")
    assert billing.ok is True
    assert billing.detail == f"{host} answered GET /v2/customers/my/balance"
    assert account.ok is True
    assert account.detail == f'team "{team["name"]}" ({team["uuid"]})'
    assert found == team["uuid"]
    asked = [r["path"] for r in sandbox.requests]
    assert asked[:2] == ["/v2/customers/my/balance", "/v2/account"]


def test_a_wrong_token_is_named_invalid_without_showing_it(sandbox):
    token = "wrong-token-3f9a1c"
    checks, team = check_api(sandbox.url, token)
    assert team is None
    assert [(c.name, c.ok) for c in checks] == [
        ("API, billing:read", False),
        ("account:read", None),
    ]
    assert checks[0].detail.startswith("the token is not valid or was revoked (HTTP 401)")
    assert "DIGITALOCEAN_TOKEN" in checks[0].detail
    assert all(token not in c.line() for c in checks)
    # One request: the account is not asked once the token was refused.
    assert [r["status"] for r in sandbox.requests] == [401]


def test_a_token_without_account_read_is_named_lacking_it():
    with SandboxServer(scopes=frozenset({"billing:read"})) as server:
        (billing, account, _), _ = check_api(server.url, server.token)
    assert billing.ok is True
    assert account.ok is False
    assert account.detail.startswith("the token lacks account:read (HTTP 403)")
    assert "every run reads the token's team with it" in account.detail


def test_a_token_without_billing_read_is_named_lacking_it():
    with SandboxServer(scopes=frozenset({"account:read"})) as server:
        (billing, account, _), _ = check_api(server.url, server.token)
    assert billing.ok is False
    assert billing.detail.startswith("the token lacks billing:read (HTTP 403)")
    assert account.ok is True


def test_an_api_that_does_not_answer_is_named_unreachable():
    with SandboxServer() as server:
        url, token = server.url, server.token
    # The server is stopped: its port refuses connections.
    started = time.monotonic()
    (billing, account), _ = check_api(url, token)
    assert billing.ok is False
    assert billing.detail.startswith(f"cannot reach {url.removeprefix('http://')}: ")
    assert "gave up after 2 attempts" in billing.detail
    assert account.ok is None
    assert time.monotonic() - started < 10


def test_server_errors_after_the_retry_are_named_unreachable(sandbox):
    sandbox.inject(r"/balance$", 503, times=2)
    (billing, _), _ = check_api(sandbox.url, sandbox.token)
    assert billing.ok is False
    assert billing.detail.startswith("cannot reach ")
    assert "HTTP 503" in billing.detail


def test_an_answer_the_api_does_not_give_points_at_the_url(sandbox):
    sandbox.inject(r"^/v2/account$", 404)
    (billing, account, _), _ = check_api(sandbox.url, sandbox.token)
    assert billing.ok is True
    assert account.ok is False
    assert account.detail == (
        f"{sandbox.url.removeprefix('http://')} answered GET /v2/account: HTTP 404 not found: "
        "check that DIGITALOCEAN_API_URL points at the API"
    )


# -- the warehouse ------------------------------------------------------------------------------
def test_a_migrated_warehouse_is_current(migrated):
    check = check_warehouse(migrated)
    assert check.ok is True
    assert check.detail == f"not locked, schema version {LATEST_VERSION} (current)"


def test_a_missing_warehouse_is_not_created_but_its_folder_is(tmp_path):
    path = tmp_path / "new" / "folder" / "warehouse.duckdb"
    check = check_warehouse(path)
    assert check.ok is True
    assert "not created yet" in check.detail
    assert path.parent.is_dir()
    assert list(path.parent.iterdir()) == []


def test_a_warehouse_locked_by_another_process_is_reported_quickly(migrated):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(migrated)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ok"
        started = time.monotonic()
        check = check_warehouse(migrated)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert check.ok is False
    assert check.detail == (
        "locked by another process that writes it (a run, or a read-write session): "
        "wait for the run or close the session"
    )
    assert elapsed < 8


def test_an_analyst_reading_the_published_file_is_no_lock(migrated):
    """The doctor opens the file read-only: a read-only session beside it is no obstacle."""
    reader = HOLD_OPEN.replace("duckdb.connect(sys.argv[1])", "duckdb.connect(sys.argv[1], True)")
    holder = subprocess.Popen(
        [sys.executable, "-c", reader, str(migrated)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ok"
        check = check_warehouse(migrated)
    finally:
        holder.kill()
        holder.wait()
    assert (check.ok, check.detail) == (
        True,
        f"not locked, schema version {LATEST_VERSION} (current)",
    )


def test_an_older_warehouse_is_reported_behind_and_left_as_it_was(old_warehouse, rows):
    tables = "SELECT table_schema, table_name FROM information_schema.tables ORDER BY ALL"
    before = rows(old_warehouse, tables)
    check = check_warehouse(old_warehouse)
    assert check.ok is True
    assert check.detail == (
        f"schema version 0, {LATEST_VERSION} behind: run `make migrate` (every run also does)"
    )
    assert rows(old_warehouse, tables) == before


def test_a_warehouse_newer_than_the_code_fails(migrated):
    with duckdb.connect(str(migrated)) as con:
        con.execute(
            "INSERT INTO schema_migrations VALUES (?, 'from_the_future', current_timestamp)",
            [LATEST_VERSION + 1],
        )
    check = check_warehouse(migrated)
    assert check.ok is False
    assert check.detail.startswith(
        f"schema version {LATEST_VERSION + 1} is newer than this code's {LATEST_VERSION}"
    )


def test_a_file_that_is_not_duckdb_fails(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    path.write_text("not a database")
    check = check_warehouse(path)
    assert check.ok is False
    assert check.detail.startswith("cannot be opened as a DuckDB file: ")


def test_a_warehouse_cut_in_half_fails_naming_it(tmp_path):
    """Every table is read through: a file whose end is missing fails here, not in the next run."""
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE schema_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMPTZ)"
        )
        con.execute(
            "CREATE TABLE t AS SELECT range AS n, md5(range::VARCHAR) AS s FROM range(2000000)"
        )
    assert check_warehouse(path).ok is not False
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    check = check_warehouse(path)
    assert check.ok is False
    assert check.line().startswith(f"✗ warehouse {path}: cannot be opened as a DuckDB file: ")


def stuck_line(run_id: str, pid: int) -> str:
    return (
        f"✗ Dagster: 1 run(s) STARTED with no live process, holding the queue: run {run_id} "
        f"(process {pid} is gone). "
        "The daemon (`make dev`, `make services`) marks each failed within minutes (its dead-run "
        "sensor); without one, open each in the UI, Runs, and Terminate it"
    )


def test_a_run_left_started_by_a_killed_process_is_named(repo_home, killed_run):
    run_id, pid = killed_run(repo_home)
    check = check_dagster({"DAGSTER_HOME": str(repo_home)})
    assert check.line() == stuck_line(run_id, pid)


def test_a_killed_run_in_postgres_is_named_by_the_same_check(
    repo_home, killed_run, postgres_server
):
    url = postgres_server.url
    run_id, pid = killed_run(repo_home, env={"DAGSTER_POSTGRES_URL": url})
    assert not (repo_home / "data" / "dagster" / "history" / "runs.db").exists()
    check = check_dagster({"DAGSTER_HOME": str(repo_home), "DAGSTER_POSTGRES_URL": url})
    assert check.line() == stuck_line(run_id, pid)


def test_a_killed_run_of_another_host_is_not_named(repo_home, killed_run):
    killed_run(repo_home, tags={HOST_TAG: "another-machine.example"})
    check = check_dagster({"DAGSTER_HOME": str(repo_home)})
    assert (
        check.line() == f"✓ Dagster: DAGSTER_HOME={repo_home}; runs stored in data/dagster (1 run)"
    )


def test_a_killed_run_with_no_host_recorded_is_one_this_machine_cannot_tell(repo_home, killed_run):
    run_id, pid = killed_run(repo_home, tags={})
    check = check_dagster({"DAGSTER_HOME": str(repo_home)})
    assert check.line() == (
        f"✓ Dagster: DAGSTER_HOME={repo_home}; runs stored in data/dagster (1 run); 1 run(s) "
        "STARTED with no host recorded, so this machine cannot tell whether their process is "
        f"gone: run {run_id} (process {pid} is not on this machine)"
    )


def test_the_published_file_is_current_after_a_publication_and_stale_after_a_write(tmp_path):
    published = tmp_path / "warehouse.duckdb"
    store = Warehouse(working_file(published))
    store.migrate()
    assert check_publication(published) == Check(
        f"published {published}",
        False,
        f"{published} was never published from {store.path}. Fix what the run reported "
        "(`could not publish …`), then `make migrate` publishes it",
    )
    store.publish(published)
    assert check_publication(published) == Check(
        f"published {published}", True, f"current: as new as the last write to {store.path}"
    )
    store.teams.see_one("t", "Team T", 1)  # a run's write whose publication never came
    check = check_publication(published)
    assert check.ok is False
    assert check.detail.startswith(f"{published} (published ")
    assert f"is older than the last write to {store.path} (" in check.detail
    assert check.detail.endswith("then `make migrate` publishes it")
    store.publish(published)
    assert check_publication(published).ok is True


def test_main_names_a_missing_publication(sandbox, point_at, warehouse_path, run_doctor):
    point_at(sandbox)
    store = Warehouse(working_file(warehouse_path))
    store.migrate()
    store.publish(warehouse_path)
    store.teams.see_one("t", "Team T", 1)
    code, out = run_doctor()
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("✗ ")]
    assert line.startswith(f"✗ published {warehouse_path}: {warehouse_path} (published ")
    assert out.splitlines()[-1] == "1 problem(s): fix the ✗ lines above"


# -- the Dagster instance -----------------------------------------------------------------------
def test_dagster_home_with_its_yaml_says_where_runs_are(dagster_home):
    check = check_dagster({"DAGSTER_HOME": str(dagster_home)})
    assert check.ok is True
    assert check.detail == (
        f"DAGSTER_HOME={dagster_home}; runs stored in {dagster_home / 'storage'} (no runs yet)"
    )
    assert not (dagster_home / "storage").exists()


def test_the_repository_dagster_yaml_is_accepted():
    root = Path(__file__).resolve().parents[1]
    check = check_dagster({"DAGSTER_HOME": str(root)})
    assert check.ok is True
    assert check.detail.startswith(f"DAGSTER_HOME={root}; runs stored in data/dagster (")


@pytest.mark.parametrize(
    ("home", "says"),
    [
        (None, "DAGSTER_HOME is not set"),
        ("relative/home", "is not an absolute folder"),
        ("no-yaml", "has no dagster.yaml"),
    ],
)
def test_dagster_home_missing_or_without_yaml_fails(tmp_path, home, says):
    env = {}
    if home == "no-yaml":
        env["DAGSTER_HOME"] = str(tmp_path)
    elif home is not None:
        env["DAGSTER_HOME"] = home
    check = check_dagster(env)
    assert check.ok is False
    assert says in check.detail
    assert "make doctor" in check.detail


@pytest.mark.parametrize(
    ("yaml", "says"),
    [
        ("storage:\n  sqlite: [\n", "while parsing"),
        ("storage:\n  sqlite:\n    base_dirx: data\n", "base_dirx"),
    ],
)
def test_a_dagster_yaml_dagster_rejects_fails(tmp_path, yaml, says):
    (tmp_path / "dagster.yaml").write_text(yaml)
    check = check_dagster({"DAGSTER_HOME": str(tmp_path)})
    assert check.ok is False
    assert check.detail.startswith(f"{tmp_path / 'dagster.yaml'}: ")
    assert says in check.detail


# -- the configuration and main() ---------------------------------------------------------------
def test_a_bad_setting_is_named_without_the_token(doctor_env):
    token = "dop_v1_secret value"
    doctor_env.setenv("DIGITALOCEAN_TOKEN", token)
    check = check_settings()
    assert check.ok is False
    assert "DIGITALOCEAN_TOKEN contains whitespace" in check.detail
    assert token not in check.detail and "secret" not in check.detail


def test_the_env_file_read_is_named(doctor_env, tmp_path):
    (Path.cwd() / ".env").write_text("INVOICE_START_PERIOD=2024-01\n")
    check = check_settings()
    assert check.ok is True
    assert check.detail == (
        f"read {Path.cwd() / '.env'}; no DIGITALOCEAN_TOKEN, so runs use the built-in "
        "sandbox API (sample data, kept in data/sandbox.duckdb, apart from WAREHOUSE_PATH)"
    )
    assert load_settings().start_period == "2024-01"


def test_main_passes_against_a_healthy_sandbox(sandbox, migrated, point_at, run_doctor):
    point_at(sandbox)
    code, out = run_doctor()
    lines = out.splitlines()
    assert code == 0
    assert lines[-1] == "all checks passed"
    assert [line[0] for line in lines[:-1]] == ["✓"] * 7
    assert "✓ inventory scopes: reads every inventory list" in out
    assert f"the API at {sandbox.url.removeprefix('http://')}" in lines[0]
    assert sandbox.data.team["name"] in out and sandbox.data.team["uuid"] in out
    assert sandbox.token not in out


def test_main_without_a_token_checks_the_builtin_sandbox(migrated, doctor_env, run_doctor):
    """Without a token the warehouse checked is the sandbox's own file."""
    doctor_env.setenv("SANDBOX_WAREHOUSE_PATH", str(migrated))
    code, out = run_doctor()
    lines = out.splitlines()
    assert code == 0, out
    assert lines[1].startswith("✓ token: not set: checking the built-in sandbox API instead")
    assert lines[3].startswith('✓ account:read: team "Example Co"')
    assert lines[4].startswith("✓ inventory scopes: reads every inventory list")
    assert lines[5].startswith(f"✓ warehouse {migrated}: ")
    assert len(lines) == 9


@pytest.mark.parametrize("sample", [True, False], ids=["sample-file", "real-file"])
def test_a_warehouse_of_the_other_kind_is_named_with_what_to_do(
    sandbox, migrated, point_at, doctor_env, run_doctor, sample
):
    """A file of sample data read with a token, or of real teams without one: ✗ naming it."""
    mark_sample_data(Warehouse(migrated), sample)
    if sample:
        point_at(sandbox)
        says = (
            f"✗ warehouse {migrated}: WAREHOUSE_PATH {str(migrated)!r} holds the built-in "
            "sandbox's sample data, and a token is set"
        )
    else:
        doctor_env.setenv("SANDBOX_WAREHOUSE_PATH", str(migrated))
        says = (
            f"✗ warehouse {migrated}: SANDBOX_WAREHOUSE_PATH {str(migrated)!r} holds teams read "
            "with a token, and no token is set"
        )
    code, out = run_doctor()
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("✗ warehouse")]
    assert line.startswith(says), out


def test_main_fails_on_a_wrong_token_without_printing_it(sandbox, migrated, point_at, run_doctor):
    token = "wrong-token-77c2e0"
    point_at(sandbox, token)
    code, out = run_doctor()
    assert code == 1
    assert "✗ API, billing:read: the token is not valid or was revoked (HTTP 401)" in out
    assert out.splitlines()[-1] == "1 problem(s): fix the ✗ lines above"
    assert token not in out


def test_main_checks_every_team_and_names_each_token_by_its_place(
    teams_sandbox, migrated, doctor_env, run_doctor
):
    tokens = teams_sandbox.tokens
    revoked = tokens[1]
    teams_sandbox.revoke(revoked)
    # The third entry is another token of the first team.
    teams_sandbox.add_team("another-token-of-team-one", teams_sandbox.data_for(tokens[0]))
    doctor_env.setenv("DIGITALOCEAN_API_URL", teams_sandbox.url)
    doctor_env.setenv("DIGITALOCEAN_TOKENS", f"{tokens[0]}, {revoked} ,another-token-of-team-one")
    doctor_env.setenv("WAREHOUSE_PATH", str(migrated))
    code, out = run_doctor()
    assert code == 1
    assert "DIGITALOCEAN_TOKENS holds 3 token(s), so runs load 3 team(s)" in out
    first = teams_sandbox.data_for(tokens[0]).team
    assert f'✓ token 1 of DIGITALOCEAN_TOKENS: account:read: team "{first["name"]}"' in out
    assert (
        "✗ token 2 of DIGITALOCEAN_TOKENS: API, billing:read: the token is not valid or was "
        "revoked (HTTP 401)" in out
    )
    assert (
        "✗ teams: token 1 of DIGITALOCEAN_TOKENS and token 3 of DIGITALOCEAN_TOKENS belong to "
        f"the same team ({first['uuid']})" in out
    )
    assert out.splitlines()[-1] == "2 problem(s): fix the ✗ lines above"
    assert not any(token in out for token in [*tokens, "another-token-of-team-one"])


def test_main_counts_every_problem(sandbox, old_warehouse, point_at, doctor_env, run_doctor):
    point_at(sandbox)
    doctor_env.setenv("WAREHOUSE_PATH", str(old_warehouse))
    doctor_env.delenv("DAGSTER_HOME")
    with SandboxServer(scopes=frozenset({"billing:read"}), token=sandbox.token) as limited:
        doctor_env.setenv("DIGITALOCEAN_API_URL", limited.url)
        code, out = run_doctor()
    assert code == 1
    assert "✗ account:read: the token lacks account:read" in out
    assert "run `make migrate`" in out
    assert "✗ Dagster: DAGSTER_HOME is not set" in out
    assert "✗ inventory scopes: the token lacks project:read, droplet:read" in out
    assert out.splitlines()[-1] == "3 problem(s): fix the ✗ lines above"


def test_main_with_a_bad_setting_checks_nothing_else_that_needs_it(doctor_env, run_doctor):
    doctor_env.setenv("INVOICE_START_PERIOD", "2024-13")
    code, out = run_doctor()
    assert code == 1
    assert out.splitlines() == [
        f"✗ configuration: INVOICE_START_PERIOD '2024-13' is not a month in YYYY-MM form "
        f"(e.g. 2024-05). Fix it in the environment (no .env in {Path.cwd()})",
        "– API, billing:read: not checked: fix the configuration first",
        "– warehouse: not checked: fix the configuration first",
        out.splitlines()[3],
        "1 problem(s): fix the ✗ lines above",
    ]
    assert out.splitlines()[3].startswith("✓ Dagster: ")


def test_the_report_masks_the_token_should_it_appear():
    text = report([Check("x", False, "echo dop_v1_abc")], ["dop_v1_abc"])
    assert text == "✗ x: echo ***\n1 problem(s): fix the ✗ lines above"


@pytest.mark.parametrize(
    ("missing", "steps"),
    [
        (("kubernetes:read", "database:read"), ("kubernetes_clusters", "database_clusters")),
        (("reserved_ip:read", "snapshot:read"), ("reserved_ips", "snapshots")),
    ],
)
def test_each_inventory_scope_is_checked_and_a_missing_one_named(missing, steps):
    with SandboxServer(scopes=DEFAULT_SCOPES - set(missing)) as server:
        (_, _, inventory), _ = check_api(server.url, server.token)
        asked = [r["path"] for r in server.requests]
    assert inventory.ok is False
    assert inventory.detail.startswith(
        f"the token lacks {', '.join(missing)} (HTTP 403): the {', '.join(steps)} step(s) fail"
    )
    for source in INVENTORY:
        assert source.index.path in asked
    with SandboxServer() as server:
        (_, _, inventory), _ = check_api(server.url, server.token)
    assert inventory.ok is True
    assert inventory.detail == (
        "reads every inventory list (project:read, droplet:read, block_storage:read, "
        "kubernetes:read, database:read, load_balancer:read, reserved_ip:read, snapshot:read)"
    )
