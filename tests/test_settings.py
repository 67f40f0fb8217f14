"""Settings: environment and `.env`, validation that names the setting and never shows the
token, and the choice between the real API and the sandbox."""

import json
import logging
import re
import secrets
import subprocess
import sys
import traceback
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
import requests

from pipeline.alerts.rules import Thresholds
from pipeline.defs.definitions import resources_for
from pipeline.defs.resources import AlertsResource, DigitalOceanResource, WarehouseResource
from pipeline.defs.sandbox import SandboxResource
from pipeline.sandbox import SandboxServer
from pipeline.settings import (
    DEFAULT_API_URL,
    DEFAULT_RAW_KEEP,
    DEFAULT_START_PERIOD,
    TOKEN_PREFIXES,
    Settings,
    SettingsError,
    check_writable,
    load_settings,
)
from pipeline.settings.fields import variables

NAMES = (
    "DIGITALOCEAN_TOKEN",
    "DIGITALOCEAN_TOKENS",
    "DIGITALOCEAN_API_URL",
    "WAREHOUSE_PATH",
    "SANDBOX_WAREHOUSE_PATH",
    "INVOICE_START_PERIOD",
)
INVOICES = "/v2/customers/my/invoices"


def a_token(prefix: str = "dop_v1_") -> str:
    return prefix + secrets.token_hex(32)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own and none of the settings' variables set; everything
    (os.environ included) is restored afterwards."""
    for name in NAMES:
        monkeypatch.setenv(name, "")  # so the deletion below is undone, even if .env sets it
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def write_dotenv(folder: Path, **values: str) -> None:
    lines = [f"{name}={value}" for name, value in values.items()]
    (folder / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- .env and the environment ---------------------------------------------------------------


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(workdir, monkeypatch):
    write_dotenv(
        workdir,
        INVOICE_START_PERIOD="2024-02",
        WAREHOUSE_PATH="from-dotenv.duckdb",
        DAGSTER_HOME="/elsewhere",  # not a setting of ours: ignored, not an error
    )
    monkeypatch.setenv("WAREHOUSE_PATH", "from-env.duckdb")
    settings = Settings.from_env()
    assert settings.start_period == "2024-02"
    assert settings.warehouse_path == Path("from-env.duckdb")
    assert settings.digitalocean.api_url == DEFAULT_API_URL
    assert settings.token is None


def test_load_settings_puts_dotenv_into_the_environment_for_dagster_envvar(workdir, monkeypatch):
    token = a_token()
    write_dotenv(workdir, DIGITALOCEAN_TOKEN=token, INVOICE_START_PERIOD="2024-06")
    settings = load_settings()
    assert settings.token is not None
    assert settings.token.get_secret_value() == token
    assert settings.start_period == "2024-06"
    # Dagster resolves EnvVar("DIGITALOCEAN_TOKEN") from os.environ when a run starts.
    assert dg.EnvVar("DIGITALOCEAN_TOKEN").get_value() == token
    # Read afresh at each call: nothing cached for a test to clear.
    monkeypatch.setenv("INVOICE_START_PERIOD", "2024-07")
    assert load_settings().start_period == "2024-07"


def test_load_settings_never_overrides_the_environment_with_dotenv(workdir, monkeypatch):
    write_dotenv(workdir, DIGITALOCEAN_TOKEN=a_token(), WAREHOUSE_PATH="from-dotenv.duckdb")
    from_env = a_token("doo_v1_")
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", from_env)
    settings = load_settings()
    assert settings.token.get_secret_value() == from_env
    assert dg.EnvVar("DIGITALOCEAN_TOKEN").get_value() == from_env
    assert settings.warehouse_path == Path("from-dotenv.duckdb")


def test_an_empty_variable_means_unset_even_when_dotenv_has_a_value(workdir, monkeypatch):
    write_dotenv(workdir, DIGITALOCEAN_TOKEN=a_token(), INVOICE_START_PERIOD="2024-02")
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", "")
    monkeypatch.setenv("INVOICE_START_PERIOD", "")
    settings = load_settings()
    # Set in the environment, so it wins; empty, so the default: the sandbox, like the EnvVar.
    assert settings.token is None
    assert settings.start_period == DEFAULT_START_PERIOD
    assert isinstance(resources_for(settings)["digitalocean"], SandboxResource)


def test_from_env_with_a_mapping_reads_neither_the_environment_nor_dotenv(workdir, monkeypatch):
    write_dotenv(workdir, INVOICE_START_PERIOD="2024-02")
    monkeypatch.setenv("WAREHOUSE_PATH", "from-env.duckdb")
    settings = Settings.from_env({"INVOICE_START_PERIOD": "2025-01"})
    assert settings.start_period == "2025-01"
    assert settings.warehouse_path == Path("data/warehouse.duckdb")


# -- validation -----------------------------------------------------------------------------

TOKEN = a_token()
OTHER_TOKEN = secrets.token_hex(32)  # no DigitalOcean prefix


def with_token(**env: str) -> dict[str, str]:
    return {"DIGITALOCEAN_TOKEN": TOKEN, **env}


BAD = [
    (with_token(INVOICE_START_PERIOD="2024-13"), ["INVOICE_START_PERIOD"]),
    (with_token(INVOICE_START_PERIOD="../x"), ["INVOICE_START_PERIOD"]),
    (with_token(DIGITALOCEAN_API_URL="http://billing.example.com"), ["DIGITALOCEAN_API_URL"]),
    (with_token(DIGITALOCEAN_API_URL="https://u:p@api.example.com"), ["DIGITALOCEAN_API_URL"]),
    (with_token(DIGITALOCEAN_API_URL="https://api.example.com/?x=1"), ["DIGITALOCEAN_API_URL"]),
    (with_token(DIGITALOCEAN_API_URL="ftp://api.example.com"), ["DIGITALOCEAN_API_URL"]),
    (with_token(WAREHOUSE_PATH="data/\x00.duckdb"), ["WAREHOUSE_PATH"]),
    (with_token(WAREHOUSE_PATH="{a_file}/warehouse.duckdb"), ["WAREHOUSE_PATH"]),
    ({"DIGITALOCEAN_TOKEN": f"{TOKEN} "}, ["DIGITALOCEAN_TOKEN"]),
    ({"DIGITALOCEAN_TOKEN": f"{TOKEN}\n"}, ["DIGITALOCEAN_TOKEN"]),
    ({"DIGITALOCEAN_TOKEN": f"{TOKEN[:20]} {TOKEN[20:]}"}, ["DIGITALOCEAN_TOKEN"]),
    ({"DIGITALOCEAN_TOKEN": f"{TOKEN}\x07"}, ["DIGITALOCEAN_TOKEN"]),
    ({"DIGITALOCEAN_TOKEN": f"{TOKEN}é"}, ["DIGITALOCEAN_TOKEN"]),
    ({"DIGITALOCEAN_TOKEN": OTHER_TOKEN}, ["DIGITALOCEAN_TOKEN", *TOKEN_PREFIXES]),
    (
        {"DIGITALOCEAN_API_URL": "https://billing.example.com"},
        ["DIGITALOCEAN_API_URL", "DIGITALOCEAN_TOKEN", "sandbox"],
    ),
    (
        with_token(INVOICE_START_PERIOD="2024-5", WAREHOUSE_PATH="\x00"),
        ["INVOICE_START_PERIOD", "WAREHOUSE_PATH"],
    ),
    (with_token(TEAM_WORKERS="0"), ["TEAM_WORKERS"]),
    (with_token(TEAM_WORKERS="65"), ["TEAM_WORKERS"]),
    (with_token(TEAM_WORKERS="four"), ["TEAM_WORKERS"]),
]


@pytest.mark.parametrize(("env", "named"), BAD)
def test_each_bad_setting_is_named_and_the_token_never_shown(tmp_path, env, named):
    (tmp_path / "a_file").write_text("not a folder")
    env = {key: value.format(a_file=tmp_path / "a_file") for key, value in env.items()}
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    message = str(raised.value)
    for name in named:
        assert name in message
    shown = message + "".join(traceback.format_exception(raised.value))
    # No piece of the token's secret part, even one split by a stray space.
    for secret in re.findall(r"[0-9a-f]{12,}", env.get("DIGITALOCEAN_TOKEN", "")):
        assert secret not in shown
    # Not chained to pydantic's ValidationError, whose text could carry the input.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


@pytest.mark.parametrize("prefix", TOKEN_PREFIXES)
def test_digitalocean_tokens_are_accepted_for_the_real_api(prefix):
    token = a_token(prefix)
    settings = Settings.from_env({"DIGITALOCEAN_TOKEN": token})
    assert settings.token.get_secret_value() == token
    assert settings.digitalocean.api_url == DEFAULT_API_URL
    assert token not in repr(settings) and token not in str(settings)


@pytest.mark.parametrize("url", [DEFAULT_API_URL, "https://billing-proxy.example.com"])
def test_a_token_without_a_digitalocean_prefix_is_refused_for_a_real_host(url):
    token = secrets.token_hex(32)
    with pytest.raises(SettingsError, match="DIGITALOCEAN_TOKEN.*dop_v1_") as raised:
        Settings.from_env({"DIGITALOCEAN_TOKEN": token, "DIGITALOCEAN_API_URL": url})
    assert token not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8765", "http://localhost:8765/", "http://[::1]:8765", "https://localhost"],
)
def test_a_token_without_a_digitalocean_prefix_is_accepted_for_a_loopback_server(url):
    settings = Settings.from_env(
        {"DIGITALOCEAN_TOKEN": "sandbox-token", "DIGITALOCEAN_API_URL": url}
    )
    assert settings.token.get_secret_value() == "sandbox-token"
    assert settings.digitalocean.api_url == url.rstrip("/")


def test_several_tokens_one_per_team_are_read_in_order():
    tokens = [a_token(), a_token("doo_v1_"), a_token()]
    settings = Settings.from_env(
        {"DIGITALOCEAN_TOKENS": f" {tokens[0]},{tokens[1]} , {tokens[2]},"}
    )
    assert [t.get_secret_value() for t in settings.tokens] == tokens
    assert settings.token_env == "DIGITALOCEAN_TOKENS"
    api = resources_for(settings)["digitalocean"]
    assert isinstance(api, DigitalOceanResource)
    assert api.token_env == "DIGITALOCEAN_TOKENS"
    shown = repr(settings) + str(settings) + repr(resources_for(settings))
    assert not any(token in shown for token in tokens)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"DIGITALOCEAN_TOKENS": "{t1}, {t1}"},
            "DIGITALOCEAN_TOKENS: entries 1 and 2 are the same",
        ),
        ({"DIGITALOCEAN_TOKENS": "{t1}, oops {t2}"}, "token 2 of DIGITALOCEAN_TOKENS contains"),
        ({"DIGITALOCEAN_TOKENS": "{t1}, abc"}, "token 2 of DIGITALOCEAN_TOKENS does not look like"),
        ({"DIGITALOCEAN_TOKENS": " , ,"}, "DIGITALOCEAN_TOKENS is set but holds no token"),
        (
            {"DIGITALOCEAN_TOKENS": "{t1}", "DIGITALOCEAN_TOKEN": "{t2}"},
            "both DIGITALOCEAN_TOKEN and DIGITALOCEAN_TOKENS are set",
        ),
    ],
)
def test_a_bad_token_list_is_named_by_entry_without_showing_a_token(env, says):
    t1, t2 = a_token(), a_token()
    given = {k: v.format(t1=t1, t2=t2) for k, v in env.items()}
    with pytest.raises(SettingsError, match=says) as raised:
        Settings.from_env(given)
    assert t1 not in str(raised.value) and t2 not in str(raised.value)


# -- settings that used to pass and then fail deep inside -------------------------------------

SECRET = "SECRET" + secrets.token_hex(8)


def refused(env: dict[str, str], now: datetime | None = None) -> str:
    """The SettingsError's message for `env`, checked to be short, unchained (no pydantic or
    decimal error behind it) and free of SECRET, in the traceback too."""
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env, now=now)
    message = str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    shown = "".join(traceback.format_exception(raised.value))
    assert SECRET not in shown
    assert len(message) < 300 and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BUDGET_USD", "1e400"),
        ("BUDGET_USD", "-0.01"),
        ("BUDGET_USD", "10000000000000000"),  # one dollar more than DECIMAL(18,2) holds
        ("ANOMALY_MIN_USD", "1e400"),
        ("NEW_SKU_MIN_USD", "1E+400"),
        ("BUDGETS", "Team A=1e400"),
        ("ANOMALY_MADS", "1e400"),
        ("ANOMALY_MIN_RATIO", "1e400"),
        ("BUDGET_WARN_SHARE", "1e999999999%"),
        ("ALERT_LOOKBACK_DAYS", "9" * 5000),
    ],
)
def test_a_money_or_threshold_setting_out_of_range_is_a_settings_error(name, value):
    message = refused({name: value})
    assert message.startswith(name)
    assert re.search(r"out of range|at most|between|from \d+ to \d+", message)
    assert "InvalidOperation" not in message


def test_the_largest_amount_a_column_holds_is_accepted():
    settings = Settings.from_env({"BUDGET_USD": "9999999999999999.99", "BUDGETS": "A=0"})
    assert settings.alerts.budget_usd == "9999999999999999.99"
    assert settings.alerts.budgets["A"] == "0.00"


MAY_2026 = datetime(2026, 5, 17, 12, 0, tzinfo=UTC)


def test_a_start_period_before_2000_names_the_year_rule_not_the_form():
    message = refused({"INVOICE_START_PERIOD": "1999-01"}, MAY_2026)
    assert message.startswith("INVOICE_START_PERIOD '1999-01' is out of range")
    assert "year must be 2000 or later" in message
    assert "YYYY-MM form" not in message


def test_a_start_period_after_the_current_month_is_refused():
    message = refused({"INVOICE_START_PERIOD": "2030-01"}, MAY_2026)
    assert message.startswith("INVOICE_START_PERIOD '2030-01' is out of range")
    assert "after the current month (2026-05)" in message


def test_the_current_month_is_the_utc_one():
    # 01:00 on June 1st in UTC+2 is still May in UTC, the partitions' time zone.
    june_first_east = datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert "(2026-05)" in refused({"INVOICE_START_PERIOD": "2026-06"}, june_first_east)
    settings = Settings.from_env({"INVOICE_START_PERIOD": "2026-05"}, now=june_first_east)
    assert settings.start_period == "2026-05"
    later = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    assert Settings.from_env({"INVOICE_START_PERIOD": "2026-06"}, now=later).start_period == (
        "2026-06"
    )


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("DIGITALOCEAN_API_URL", "http://user:{secret}@example.com"),
        ("DIGITALOCEAN_API_URL", "https://user:{secret}@api.example.com"),
        ("DIGITALOCEAN_API_URL", "http://user:{secret}@127.0.0.1:8765"),
        ("DIGITALOCEAN_API_URL", "https://{secret}@api.example.com"),
        ("DIGITALOCEAN_API_URL", "user:{secret}@example.com"),  # no scheme: urlsplit misreads it
        ("DIGITALOCEAN_API_URL", "ftp://user:{secret}@example.com"),
        ("DAGSTER_UI_URL", "http://admin:{secret}@localhost:3000"),
        ("DAGSTER_UI_URL", "admin:{secret}@dagster.example.com"),
    ],
)
def test_credentials_in_a_url_are_refused_and_never_shown(name, url):
    message = refused(with_token(**{name: url.format(secret=SECRET)}))
    assert message.startswith(name)
    assert "credentials" in message
    assert "example.com" not in message and "127.0.0.1" not in message


@pytest.mark.parametrize(
    ("urls", "says"),
    [
        (f"nosuchscheme://{SECRET}", "entry 1 of ALERT_URLS: apprise knows no 'nosuchscheme'"),
        (f"json://127.0.0.1:9/x, slakc://{SECRET}/b/c", "entry 2 of ALERT_URLS: apprise knows no"),
        (f"slack://{SECRET}", "entry 1 of ALERT_URLS (slack): apprise cannot use this URL"),
    ],
)
def test_an_alert_url_apprise_cannot_use_is_refused_at_settings_time(urls, says):
    message = refused({"ALERT_URLS": urls})
    assert message.startswith(says)


def test_apprise_is_imported_only_when_alert_urls_are_set():
    """Checking ALERT_URLS asks apprise; every other process should not pay its import."""
    probe = (
        "import json, sys\n"
        "from pipeline.settings import Settings\n"
        "Settings.from_env(json.loads(sys.argv[1]))\n"
        "print('apprise' in sys.modules)\n"
    )

    def imports_apprise(env: dict[str, str]) -> bool:
        done = subprocess.run(
            [sys.executable, "-c", probe, json.dumps(env)],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        return done.stdout.strip() == "True"

    assert not imports_apprise({"BUDGET_USD": "100"})
    assert imports_apprise({"ALERT_URLS": "json://127.0.0.1:9/hook"})


def test_raw_keep_is_a_whole_number_and_defaults_to_three():
    assert Settings.from_env({}).retention.raw_keep == DEFAULT_RAW_KEEP == 3
    assert Settings.from_env({"RAW_KEEP": "0"}).retention.raw_keep == 0
    assert Settings.from_env({"RAW_KEEP": " 12 "}).retention.raw_keep == 12
    for bad in ["-1", "1.5", "three", "1001", "٣"]:
        assert refused({"RAW_KEEP": bad}).startswith(f"RAW_KEEP {bad!r} must be")


def test_a_warehouse_path_naming_a_directory_is_refused(tmp_path):
    message = refused({"WAREHOUSE_PATH": str(tmp_path)})
    assert message.startswith(f"WAREHOUSE_PATH {str(tmp_path)!r} is a directory")
    assert str(tmp_path / "warehouse.duckdb") in message


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("locked/warehouse.duckdb", "the folder {locked!r} is not writable by this user"),
        ("locked/new/sub/warehouse.duckdb", "the folder {locked!r} is not writable"),
        ("locked/existing.duckdb", "is a file this user may not write"),
    ],
)
def test_a_warehouse_path_this_user_cannot_write_is_refused_to_writers_only(
    tmp_path, lock, where, says
):
    """Settings take a read-only place (readers need no more); a command that writes asks
    `check_writable` first and is refused, named."""
    locked = tmp_path / "locked"
    locked.mkdir()
    existing = locked / "existing.duckdb"
    existing.touch()
    lock(existing if where.endswith("existing.duckdb") else locked)
    path = tmp_path / where
    assert Settings.from_env({"WAREHOUSE_PATH": str(path)}).warehouse_path == path
    working = existing if where.endswith("existing.duckdb") else None
    with pytest.raises(SettingsError) as refusal:
        check_writable(path, working)
    message = str(refusal.value)
    assert message.startswith(f"WAREHOUSE_PATH {str(path)!r}")
    assert says.format(locked=str(locked)) in message


def test_a_warehouse_path_in_a_writable_folder_is_accepted(tmp_path):
    for path in [tmp_path / "w.duckdb", tmp_path / "new" / "sub" / "w.duckdb"]:
        assert Settings.from_env({"WAREHOUSE_PATH": str(path)}).warehouse_path == path
    (tmp_path / "w.duckdb").write_bytes(b"")
    assert Settings.from_env({"WAREHOUSE_PATH": str(tmp_path / "w.duckdb")})


# -- which API the pipeline uses --------------------------------------------------------------


def test_without_a_token_the_pipeline_uses_the_sandbox_and_its_own_file():
    settings = Settings.from_env({"WAREHOUSE_PATH": "w/warehouse.duckdb"})
    resources = resources_for(settings)
    assert sorted(resources) == ["alerts", "digitalocean", "warehouse"]
    assert isinstance(resources["digitalocean"], SandboxResource)
    assert not isinstance(resources["digitalocean"], DigitalOceanResource)
    assert isinstance(resources["warehouse"], WarehouseResource)
    # Sample data never goes to WAREHOUSE_PATH: the sandbox has a file of its own.
    assert (settings.sample_data, settings.warehouse) == (True, Path("data/sandbox.duckdb"))
    assert settings.warehouse_env == "SANDBOX_WAREHOUSE_PATH"
    assert resources["warehouse"].path == "data/sandbox.duckdb"
    assert resources["warehouse"].sample_data is True
    moved = Settings.from_env({"SANDBOX_WAREHOUSE_PATH": "s/sample.duckdb"})
    assert resources_for(moved)["warehouse"].path == "s/sample.duckdb"


def test_with_a_token_the_warehouse_is_warehouse_path_and_holds_no_sample_data():
    settings = Settings.from_env(
        {
            "DIGITALOCEAN_TOKEN": a_token(),
            "WAREHOUSE_PATH": "w/warehouse.duckdb",
            "SANDBOX_WAREHOUSE_PATH": "s/sample.duckdb",
        }
    )
    assert (settings.sample_data, settings.warehouse) == (False, Path("w/warehouse.duckdb"))
    assert settings.warehouse_env == "WAREHOUSE_PATH"
    warehouse = resources_for(settings)["warehouse"]
    assert (warehouse.path, warehouse.sample_data) == ("w/warehouse.duckdb", False)


@pytest.mark.parametrize(
    ("sandbox", "says"),
    [
        ("w/warehouse.duckdb", "share a file"),
        ("w/./warehouse.duckdb", "share a file"),
        ("w/warehouse.working.duckdb", "share a file"),
        ("\x00", "SANDBOX_WAREHOUSE_PATH contains a NUL byte"),
    ],
)
def test_the_sandbox_file_is_validated_and_never_the_real_one(sandbox, says):
    message = refused({"WAREHOUSE_PATH": "w/warehouse.duckdb", "SANDBOX_WAREHOUSE_PATH": sandbox})
    assert says in message
    assert message.startswith("SANDBOX_WAREHOUSE_PATH")


def test_a_sandbox_path_that_is_a_folder_is_refused_naming_its_variable(tmp_path):
    message = refused({"SANDBOX_WAREHOUSE_PATH": str(tmp_path)})
    assert message.startswith(f"SANDBOX_WAREHOUSE_PATH {str(tmp_path)!r} is a directory")


def test_with_a_token_the_pipeline_uses_the_api_and_reads_the_token_at_launch():
    token = a_token()
    url = "https://billing-proxy.example.com"
    resources = resources_for(
        Settings.from_env({"DIGITALOCEAN_TOKEN": token, "DIGITALOCEAN_API_URL": url})
    )
    api = resources["digitalocean"]
    assert isinstance(api, DigitalOceanResource)
    assert api.api_url == url
    # An EnvVar: the UI and the run config show the variable's name, not its value.
    assert isinstance(api.token, dg.EnvVar)
    assert api.token == "DIGITALOCEAN_TOKEN"
    assert token not in repr(resources)


def test_the_sandbox_resource_serves_a_client_for_the_block_and_says_so(caplog):
    log = logging.getLogger("test_settings.sandbox")
    with caplog.at_level(logging.WARNING), SandboxResource().client(log) as api:
        invoices = api.get_page(INVOICES).records("invoices")
        host = api.host
    assert invoices, "the sandbox serves sample invoices"
    assert host.startswith("127.0.0.1:")
    assert "SANDBOX" in caplog.text and "sample data" in caplog.text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{host}{INVOICES}", timeout=2)


def test_the_api_resource_serves_the_same_kind_of_client(caplog):
    with SandboxServer() as server:
        resource = DigitalOceanResource(
            token=server.token, api_url=server.url, timeout_seconds=2.0, retry_attempts=1
        )
        with caplog.at_level(logging.INFO), resource.client(logging.getLogger("t")) as api:
            invoices = api.get_page(INVOICES).records("invoices")
    assert invoices
    assert f"Using the DigitalOcean API at {server.url.removeprefix('http://')}" in caplog.text
    assert "SANDBOX" not in caplog.text
    assert all(request["authorized"] for request in server.requests)


def test_the_api_resource_refuses_an_empty_token():
    resource = DigitalOceanResource(token="", api_url="http://127.0.0.1:9")
    with pytest.raises(SettingsError, match="DIGITALOCEAN_TOKEN"):
        with resource.client(logging.getLogger("t")):
            pass


def test_team_workers_reach_the_api_resource():
    assert Settings.from_env({}).api.team_workers == 8
    settings = Settings.from_env({"TEAM_WORKERS": "3"})
    assert resources_for(settings)["digitalocean"].team_workers == 3


def test_the_dagster_cli_says_a_bad_setting_in_its_first_lines(tmp_path):
    """`dagster …` loads the definitions; a bad setting is named before Dagster's traceback."""
    import subprocess
    import sys
    from pathlib import Path

    dagster = Path(sys.executable).parent / "dagster"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BUDGET_USD": "1e400",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "pipeline.defs.definitions"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    first = (done.stderr + done.stdout).splitlines()[:5]
    assert any(line.startswith("error: BUDGET_USD '1e400' is out of range") for line in first), (
        first
    )


# -- each setting declared once ---------------------------------------------------------------


def declared() -> dict[str, object]:
    """Every variable the settings read, and its default: the model's own fields' and the
    resources' (their fields' Variable), each declared once."""
    found = {}
    for model, instance in [(Settings, None), *((g, g()) for g in Settings.GROUPS.values())]:
        for field, name in variables(model).items():
            info = model.model_fields[field]
            found[name] = getattr(instance, field) if instance is not None else info.default
    return found


def test_the_configuration_table_gives_each_variable_its_declared_default():
    """docs/configuration.md lists every variable the settings read, with the default the
    code declares: a default changed in its one place shows here until the table says so."""
    table = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", table, re.MULTILINE))
    defaults = declared()
    assert set(defaults) <= set(rows), set(defaults) - set(rows)
    for name, default in defaults.items():
        shown = rows[name].strip()
        if default in (None, {}):
            assert shown.startswith("unset"), (name, shown)
        else:
            assert shown == f"`{default}`", (name, shown, default)


def test_a_resource_built_from_a_runs_config_is_checked_by_the_same_rules():
    """The rules are the resources' own: a value given in the UI's run config is refused
    with the same message as the variable's."""
    with pytest.raises(ValueError, match="ANOMALY_MADS '0' must be a number above 0"):
        AlertsResource(spike_mads="0")
    with pytest.raises(ValueError, match="TEAM_WORKERS '65' must be how many teams at once"):
        SandboxResource(team_workers=65)
    with pytest.raises(ValueError, match="BUDGETS entry for 'A': '1.234' must have at most two"):
        AlertsResource(budgets={"A": "1.234"})
    alerts = AlertsResource(budgets={"A": "5000"}, budget_warn_share="80%")
    assert (alerts.budgets, alerts.budget_warn_share) == ({"A": "5000.00"}, "0.8")
    assert AlertsResource().thresholds() == Thresholds(), "one set of defaults"


def test_a_value_from_an_envvar_is_checked_when_the_run_reads_it(monkeypatch):
    """`dg.EnvVar` is Dagster's way to keep a value out of the config: it cannot be read when
    the resource is declared, so its rule runs when the run builds the resource."""
    monkeypatch.setenv("TEST_ANOMALY_MADS", "0")
    declared = AlertsResource(spike_mads=dg.EnvVar("TEST_ANOMALY_MADS"))
    with pytest.raises(ValueError, match="ANOMALY_MADS '0' must be a number above 0"):
        declared.process_config_and_initialize()
    monkeypatch.setenv("TEST_ANOMALY_MADS", "7")
    assert declared.process_config_and_initialize().thresholds().spike_mads == Decimal(7)


def test_the_cost_anomalies_view_is_built_with_the_declared_thresholds():
    """views.sql cannot import the defaults; it is held to them here."""
    views = Path(__file__).resolve().parents[1] / "pipeline" / "warehouse" / "views.sql"
    view = r"VIEW cost_anomalies AS\s+SELECT \* FROM cost_anomalies_at\(([^)]*)\)"
    called = re.search(view, views.read_text())
    assert called is not None
    given = [Decimal(part) for part in called.group(1).split(",")]
    assert given == list(Thresholds().anomaly_params().values())[:4]
