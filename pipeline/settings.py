"""Settings from the environment and `.env`, validated before any request or SQL runs.

Every value a user can set is checked here once, so a typo fails with a message that names the
setting instead of surfacing later as an HTTP or SQL error. No message ever contains the token.

`get_settings()` is the one way the pipeline reads them: it loads `.env` from the working
directory into the process environment (variables already set win), so Dagster's
`EnvVar("DIGITALOCEAN_TOKEN")` finds the token at launch whichever entry point started the process,
then validates and caches the result.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal, DecimalException
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.months import FIRST_YEAR, MONTH_PATTERN, month_of

DEFAULT_API_URL = "https://api.digitalocean.com"
DEFAULT_WAREHOUSE_PATH = "data/warehouse.duckdb"
# The built-in sandbox's sample data lives in a file of its own, never in WAREHOUSE_PATH's.
DEFAULT_SANDBOX_WAREHOUSE_PATH = "data/sandbox.duckdb"
WAREHOUSE_ENV = "WAREHOUSE_PATH"
SANDBOX_WAREHOUSE_ENV = "SANDBOX_WAREHOUSE_PATH"
# What every place that shows the sandbox's data says of it.
SAMPLE_DATA = "sample data (built-in sandbox)"
DEFAULT_START_PERIOD = "2023-01"
ENV_FILE = ".env"
# Personal access tokens, OAuth access tokens and OAuth refresh tokens.
TOKEN_PREFIXES = ("dop_v1_", "doo_v1_", "dor_v1_")
TOKEN_ENV = "DIGITALOCEAN_TOKEN"  # one team
TOKENS_ENV = "DIGITALOCEAN_TOKENS"  # several teams: tokens separated by commas
# Budget and anomaly alerts (pipeline/alerts.py); the defaults are also the cost_anomalies view's.
DEFAULT_UI_URL = "http://localhost:3000"
DEFAULT_WARN_SHARE = Decimal("0.8")
DEFAULT_SPIKE_MADS = Decimal("6")
DEFAULT_SPIKE_MIN_USD = Decimal("50")
DEFAULT_SPIKE_MIN_RATIO = Decimal("10")
DEFAULT_NEW_SKU_MIN_USD = Decimal("10")
DEFAULT_LOOKBACK_DAYS = 7
DEFAULT_TEAM_WORKERS = 8  # teams fetched at once (each with its own client pool)
MAX_TEAM_WORKERS = 64
DEFAULT_DASHBOARD_PORT = 8501  # `make dashboard` (Streamlit's own default)
ALERT_URLS_ENV = "ALERT_URLS"
# Raw retention: the latest good fetch of each team × month × source, and this many older ones.
# The same default as the store's (pipeline/warehouse/store.py), which reads no settings.
DEFAULT_RAW_KEEP = 3
MAX_RAW_KEEP = 1000
# Amounts are compared with DECIMAL(18,2) columns: anything larger cannot be a bill.
MAX_USD = Decimal(10) ** 16 - Decimal("0.01")
# The anomaly thresholds' ceilings: beyond them no day can ever alert, so a value there is a typo.
MAX_SPIKE_MADS = Decimal(1000)
MAX_SPIKE_RATIO = Decimal(1_000_000)
# "Now" for the checks that depend on the date (INVOICE_START_PERIOD); `from_env(now=)` sets it.
_NOW: ContextVar[datetime | None] = ContextVar("settings_now", default=None)


def split_tokens(text: str) -> list[str]:
    """`DIGITALOCEAN_TOKENS`' entries: separated by commas, spaces around them allowed."""
    return [part.strip() for part in text.split(",") if part.strip()]


def token_place(position: int, env: str = TOKENS_ENV) -> str:
    """How a token is named where its value may not be: `token 2 of DIGITALOCEAN_TOKENS`."""
    return TOKEN_ENV if env == TOKEN_ENV else f"token {position} of {TOKENS_ENV}"


class SettingsError(ValueError):
    """A setting or partition key is malformed; the message names which one."""


def split_urls(text: str) -> list[str]:
    """`ALERT_URLS`' entries: separated by commas and/or whitespace."""
    return [part for part in re.split(r"[,\s]+", text) if part]


def clip(value: str, limit: int = 40) -> str:
    """A value as messages quote it: repr, cut short, so a pasted blob keeps them a line long."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _number(text: str, what: str, noun: str = "a number") -> Decimal:
    """A finite decimal read exactly, or a SettingsError naming `what`."""
    try:
        value = Decimal(text)
    except DecimalException:
        raise SettingsError(f"{what} {clip(text)} is not {noun}") from None
    if not value.is_finite():
        raise SettingsError(f"{what} {clip(text)} is not {noun}")
    return value


def usd(text: str, what: str) -> Decimal:
    """A non-negative amount in dollars with at most two decimals, exactly (never a float), and
    no larger than a DECIMAL(18,2) column holds."""
    shown = text.strip()
    value = _number(shown.removeprefix("$").replace("_", ""), what, "an amount in dollars")
    # Range first: quantizing 1e400 would raise decimal.InvalidOperation.
    if not 0 <= value <= MAX_USD:
        raise SettingsError(
            f"{what} {clip(shown)} is out of range: an amount from 0 to {MAX_USD:,} dollars"
        )
    if value != value.quantize(Decimal("0.01")):
        raise SettingsError(f"{what} {clip(shown)} must have at most two decimals")
    return value.quantize(Decimal("0.01"))


def whole_number(value: Any, what: str, low: int, high: int, noun: str) -> int:
    """A whole number from `low` to `high`, in ASCII digits (int() would take other scripts')."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) < 10) or not low <= int(text) <= high:
        raise SettingsError(f"{what} {clip(text)} must be {noun}, from {low} to {high}")
    return int(text)


def _amounts(
    text: str, variable: str, form: str, valid: Callable[[str], bool]
) -> dict[str, Decimal]:
    """`key=amount, key=amount` (split at each key's last `=`), each key `valid` and named once,
    each amount in dollars; an error names the variable, the entry and the `form` it must have."""
    budgets: dict[str, Decimal] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        key, sep, amount = entry.rpartition("=")
        key = key.strip()
        if not sep or not key or not valid(key):
            raise SettingsError(f"{variable} entry {entry!r} is not {form}")
        if key in budgets:
            raise SettingsError(f"{variable} names {key!r} twice")
        budgets[key] = usd(amount, f"{variable} entry for {key!r}:")
    return budgets


def parse_budgets(text: str) -> dict[str, Decimal]:
    """`BUDGETS`: `Team A=5000, <team uuid>=1200`, keyed by team name or uuid."""
    return _amounts(
        text, "BUDGETS", "`team name or uuid=amount` (e.g. Team A=5000)", lambda key: True
    )


OWNER_KINDS = ("project", "tag")


def _owner(key: str) -> bool:
    """`project:<name>`, or `tag:<key>:<value>` with both parts."""
    kind, _, name = key.partition(":")
    if kind == "tag":
        tag_key, colon, value = name.partition(":")
        return bool(tag_key and colon and value)
    return kind in OWNER_KINDS and bool(name)


def parse_owner_budgets(text: str) -> dict[str, Decimal]:
    """`OWNER_BUDGETS`: `project:web=2000, tag:env:prod=1500`, a monthly budget for a project
    (by name) or a tag value (`tag:<key>:<value>`; a plain tag's value is `true`), in every
    team that has it."""
    return _amounts(
        text,
        "OWNER_BUDGETS",
        "`project:<name>=amount` or `tag:<key>:<value>=amount` "
        "(e.g. project:web=2000, tag:env:prod=1500)",
        _owner,
    )


def validate_period(value: str, what: str = "invoice period") -> str:
    """Return `value` if it is a real `YYYY-MM` month from FIRST_YEAR on, else raise naming
    `what` and the rule it breaks (the form, or the year)."""
    if not isinstance(value, str) or not re.fullmatch(MONTH_PATTERN, value):
        raise SettingsError(f"{what} {value!r} is not a month in YYYY-MM form (e.g. 2024-05)")
    if int(value[:4]) < FIRST_YEAR:
        raise SettingsError(
            f"{what} {value!r} is out of range: the year must be {FIRST_YEAR} or later"
        )
    return value


def validate_start_period(value: str, now: datetime) -> str:
    """`INVOICE_START_PERIOD`: a month (see `validate_period`) no later than `now`'s (UTC), as
    partitions run from it through the current month."""
    validate_period(value, "INVOICE_START_PERIOD")
    current = month_of(now.astimezone(UTC))
    if value > current:
        raise SettingsError(
            f"INVOICE_START_PERIOD {value!r} is out of range: it must not be after the current "
            f"month ({current}), as partitions run from it through the current month"
        )
    return value


def has_credentials(url: str) -> bool:
    """Whether a URL may carry userinfo (`user:password@`). Any `@` counts, so that a URL
    whose scheme is missing or mistyped, which urlsplit cannot take apart, is not shown either."""
    return "@" in url


def validate_warehouse_path(path: Path, name: str = WAREHOUSE_ENV) -> Path:
    """The DuckDB file: a file (or nothing yet), not a folder, under no file. Whether this user
    may write there is asked only by the commands that write (`check_writable`): readers
    (dashboard, report, export, focus) work from a read-only folder too. `name` is the variable
    messages name (WAREHOUSE_PATH or SANDBOX_WAREHOUSE_PATH)."""
    shown = str(path)
    if "\x00" in shown:
        raise SettingsError(f"{name} contains a NUL byte")
    try:
        _check_warehouse_place(path, name)
    except OSError as exc:  # a folder on the path this user may not enter, a name too long
        raise SettingsError(f"{name} {shown!r} cannot be used: {exc.strerror or exc}") from None
    return path


def _warehouse_files(path: Path) -> set[Path]:
    """The analysts' file and the loader's working file beside it (as
    `pipeline.warehouse.publish.working_file` names it), resolved."""
    base = Path(os.path.abspath(path))
    return {base, base.with_name(f"{base.stem}.working{base.suffix}")}


def _existing_folder(path: Path) -> Path:
    """The first folder on the path that exists: the rest are created at the first write."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_warehouse_place(path: Path, name: str) -> None:
    shown = str(path)
    if path.is_dir():
        raise SettingsError(
            f"{name} {shown!r} is a directory: name the DuckDB file, e.g. "
            f"{str(path / 'warehouse.duckdb')!r}"
        )
    folder = _existing_folder(path)
    if not folder.is_dir():
        raise SettingsError(f"{name} {shown!r}: {str(folder)!r} is a file, not a directory")


def check_writable(path: Path, working: Path | None = None, name: str = WAREHOUSE_ENV) -> None:
    """Before a command writes: the folder of the warehouse (`name`: WAREHOUSE_PATH, or
    SANDBOX_WAREHOUSE_PATH for the sandbox's) takes new files (the working file, its .wal, each
    publication's copy), and the working file, if there, may be written.

    Writability is asked of the kernel (`os.access`, effective ids), which knows root's
    override, read-only mounts and immutable folders; permission bits alone would not."""
    shown = str(path)
    try:
        for existing in (working,):
            if existing is not None and existing.exists() and not _writable(existing):
                raise SettingsError(
                    f"{name} {shown!r}: the loader's file {str(existing)!r} is a file "
                    "this user may not write"
                )
        folder = _existing_folder(path)
        if not _writable(folder, os.W_OK | os.X_OK):
            raise SettingsError(
                f"{name} {shown!r}: the folder {str(folder)!r} is not writable by this "
                "user (the loader writes its working file and each publication there; reading "
                "needs no more than read access)"
            )
    except OSError as exc:
        raise SettingsError(f"{name} {shown!r} cannot be written: {exc.strerror or exc}") from None


def _writable(path: Path, mode: int = os.W_OK) -> bool:
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


@contextlib.contextmanager
def _apprise_quiet() -> Iterator[None]:
    """apprise logs the URLs it cannot load; a URL may hold a token, so say nothing."""
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def validate_alert_urls(urls: list[str]) -> None:
    """Each entry is a URL apprise can use: a scheme it knows, with the parts that scheme needs.

    Asked of apprise itself (`Apprise.instantiate` parses and builds the notifier, sending
    nothing), imported only here: 75 ms, and only when ALERT_URLS is set."""
    for position, url in enumerate(urls, start=1):
        scheme, sep, rest = url.partition("://")
        if not sep or not rest or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme.lower()):
            # Never the URL itself: it may carry a webhook token.
            raise SettingsError(
                f"entry {position} of {ALERT_URLS_ENV} is not an apprise URL "
                "(scheme://…, e.g. slack://…, msteams://…, mailtos://…, json://…)"
            )
    import apprise
    from apprise.manager_plugins import NotificationManager

    known = NotificationManager()
    for position, url in enumerate(urls, start=1):
        scheme = url.partition("://")[0].lower()
        place = f"entry {position} of {ALERT_URLS_ENV}"
        if scheme not in known:
            # A scheme is a word the user typed, not a secret (and at most 20 characters shown).
            raise SettingsError(
                f"{place}: apprise knows no {scheme[:20]!r} scheme (e.g. slack://…, "
                "msteams://…, mailtos://…, json://…; see the apprise wiki for the list)"
            )
        with _apprise_quiet():
            usable = apprise.Apprise.instantiate(url) is not None
        if not usable:
            raise SettingsError(
                f"{place} ({scheme}): apprise cannot use this URL (a part that {scheme}:// "
                "needs is missing or malformed); the URL is not shown, it may hold a token"
            )


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_api_url(url: str) -> str:
    """The token goes only to this URL: HTTPS, or plain HTTP on loopback (sandbox, tests).
    A URL with credentials is refused before anything else, and never shown."""
    if has_credentials(url):
        raise SettingsError(
            "DIGITALOCEAN_API_URL must not carry credentials (user:password@…); the value is "
            "not shown. The token goes in DIGITALOCEAN_TOKEN."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"DIGITALOCEAN_API_URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(
            f"DIGITALOCEAN_API_URL {url!r} uses plain http: the token would travel unencrypted. "
            "Use https (plain http is allowed only for loopback hosts)."
        )
    if parts.query or parts.fragment:
        raise SettingsError(
            "DIGITALOCEAN_API_URL must be a bare base URL (no query or credentials)"
        )
    return url.rstrip("/")


def _check_token_shape(token: str, api_url: str, name: str = TOKEN_ENV) -> None:
    """Catch a pasted token's stray whitespace or a wrong value before it is sent anywhere.

    Messages name the variable (and the entry of a list), never the value."""
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise SettingsError(
            f"{name} contains whitespace or a control character "
            "(a stray space or newline from copying it?)"
        )
    if not token.isascii():
        raise SettingsError(f"{name} contains characters that are not printable ASCII")
    if not token.startswith(TOKEN_PREFIXES) and not is_loopback(urlsplit(api_url).hostname):
        raise SettingsError(
            f"{name} does not look like a DigitalOcean API token: it should start "
            f"with {', '.join(TOKEN_PREFIXES[:-1])} or {TOKEN_PREFIXES[-1]}. Other tokens are "
            "accepted only when DIGITALOCEAN_API_URL is a loopback host (a local test server)."
        )


class Settings(BaseSettings):
    """What a user can set, read from the environment and `.env` (the environment wins).

    A variable set to the empty string counts as unset. Build one with `get_settings()` (the
    process's settings) or `Settings.from_env(mapping)` (exactly the given variables)."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    token: SecretStr | None = Field(default=None, validation_alias=TOKEN_ENV)
    tokens_list: SecretStr | None = Field(default=None, validation_alias=TOKENS_ENV)
    api_url: str = Field(default=DEFAULT_API_URL, validation_alias="DIGITALOCEAN_API_URL")
    warehouse_path: Path = Field(
        default=Path(DEFAULT_WAREHOUSE_PATH), validation_alias=WAREHOUSE_ENV
    )
    sandbox_warehouse_path: Path = Field(
        default=Path(DEFAULT_SANDBOX_WAREHOUSE_PATH), validation_alias=SANDBOX_WAREHOUSE_ENV
    )
    start_period: str = Field(default=DEFAULT_START_PERIOD, validation_alias="INVOICE_START_PERIOD")
    # Alerts. ALERT_URLS may hold webhook tokens: a secret, never shown, like the API tokens.
    budget_usd: Decimal | None = Field(default=None, validation_alias="BUDGET_USD")
    budgets_text: str | None = Field(default=None, validation_alias="BUDGETS")
    owner_budgets_text: str | None = Field(default=None, validation_alias="OWNER_BUDGETS")
    budget_warn_share: Decimal = Field(
        default=DEFAULT_WARN_SHARE, validation_alias="BUDGET_WARN_SHARE"
    )
    spike_mads: Decimal = Field(default=DEFAULT_SPIKE_MADS, validation_alias="ANOMALY_MADS")
    spike_min_usd: Decimal = Field(
        default=DEFAULT_SPIKE_MIN_USD, validation_alias="ANOMALY_MIN_USD"
    )
    spike_min_ratio: Decimal = Field(
        default=DEFAULT_SPIKE_MIN_RATIO, validation_alias="ANOMALY_MIN_RATIO"
    )
    new_sku_min_usd: Decimal = Field(
        default=DEFAULT_NEW_SKU_MIN_USD, validation_alias="NEW_SKU_MIN_USD"
    )
    alert_lookback_days: int = Field(
        default=DEFAULT_LOOKBACK_DAYS, validation_alias="ALERT_LOOKBACK_DAYS"
    )
    # Idle resources: a snapshot older than this many days is idle; an idle resource whose
    # last month cost at least IDLE_MIN_USD is alerted once.
    snapshot_max_age_days: int = Field(default=90, validation_alias="SNAPSHOT_MAX_AGE_DAYS")
    idle_min_usd: Decimal = Field(default=Decimal("5.00"), validation_alias="IDLE_MIN_USD")
    alert_urls_text: SecretStr | None = Field(default=None, validation_alias=ALERT_URLS_ENV)
    ui_url: str = Field(default=DEFAULT_UI_URL, validation_alias="DAGSTER_UI_URL")
    team_workers: int = Field(default=DEFAULT_TEAM_WORKERS, validation_alias="TEAM_WORKERS")
    raw_keep: int = Field(default=DEFAULT_RAW_KEEP, validation_alias="RAW_KEEP")
    dashboard_port: int = Field(default=DEFAULT_DASHBOARD_PORT, validation_alias="DASHBOARD_PORT")

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value != ""}
        return data

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return validate_api_url(value)

    @field_validator("warehouse_path", "sandbox_warehouse_path")
    @classmethod
    def _warehouse_path(cls, value: Path, info: Any) -> Path:
        names = {"warehouse_path": WAREHOUSE_ENV, "sandbox_warehouse_path": SANDBOX_WAREHOUSE_ENV}
        return validate_warehouse_path(value, names[info.field_name])

    @field_validator("start_period")
    @classmethod
    def _start_period(cls, value: str) -> str:
        now = _NOW.get()
        if now is None:
            raise SettingsError("settings are built by Settings.from_env(), which says when now is")
        return validate_start_period(value, now)

    @field_validator("budget_usd", "spike_min_usd", "new_sku_min_usd", mode="before")
    @classmethod
    def _amounts(cls, value: Any, info: Any) -> Any:
        names = {
            "budget_usd": "BUDGET_USD",
            "spike_min_usd": "ANOMALY_MIN_USD",
            "new_sku_min_usd": "NEW_SKU_MIN_USD",
        }
        return usd(str(value), names[info.field_name]) if value is not None else value

    @field_validator("budgets_text")
    @classmethod
    def _budgets(cls, value: str | None) -> str | None:
        if value is not None:
            parse_budgets(value)
        return value

    @field_validator("owner_budgets_text")
    @classmethod
    def _owner_budgets(cls, value: str | None) -> str | None:
        if value is not None:
            parse_owner_budgets(value)
        return value

    @field_validator("budget_warn_share", mode="before")
    @classmethod
    def _warn_share(cls, value: Any) -> Decimal:
        text = str(value).strip()
        share = _number(text.removesuffix("%"), "BUDGET_WARN_SHARE")
        percent = text.endswith("%")
        # Range first, then the division: 1e999999% would overflow it.
        if not 0 < share <= (100 if percent else 1):
            raise SettingsError(
                f"BUDGET_WARN_SHARE {clip(text)} must be a share between 0 and 1 (e.g. 0.8 or 80%)"
            )
        return share / 100 if percent else share

    @field_validator("spike_mads", "spike_min_ratio", mode="before")
    @classmethod
    def _positive(cls, value: Any, info: Any) -> Decimal:
        name, ceiling = {
            "spike_mads": ("ANOMALY_MADS", MAX_SPIKE_MADS),
            "spike_min_ratio": ("ANOMALY_MIN_RATIO", MAX_SPIKE_RATIO),
        }[info.field_name]
        text = str(value).strip()
        number = _number(text, name)
        if not 0 < number <= ceiling:
            raise SettingsError(
                f"{name} {clip(text)} must be a number above 0 and at most {ceiling:,}"
            )
        return number

    @field_validator("alert_lookback_days", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> int:
        return whole_number(value, "ALERT_LOOKBACK_DAYS", 1, 366, "a whole number of days")

    @field_validator("snapshot_max_age_days", mode="before")
    @classmethod
    def _snapshot_max_age(cls, value: Any) -> int:
        return whole_number(value, "SNAPSHOT_MAX_AGE_DAYS", 1, 3660, "a whole number of days")

    @field_validator("idle_min_usd", mode="before")
    @classmethod
    def _idle_min(cls, value: Any) -> Any:
        return usd(str(value), "IDLE_MIN_USD")

    @field_validator("raw_keep", mode="before")
    @classmethod
    def _raw_keep(cls, value: Any) -> int:
        return whole_number(
            value, "RAW_KEEP", 0, MAX_RAW_KEEP, "the number of older raw fetches to keep"
        )

    @field_validator("team_workers", mode="before")
    @classmethod
    def _team_workers(cls, value: Any) -> int:
        return whole_number(value, "TEAM_WORKERS", 1, MAX_TEAM_WORKERS, "how many teams at once")

    @field_validator("dashboard_port", mode="before")
    @classmethod
    def _dashboard_port(cls, value: Any) -> int:
        return whole_number(value, "DASHBOARD_PORT", 1, 65535, "a TCP port")

    @field_validator("alert_urls_text")
    @classmethod
    def _alert_urls(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        urls = split_urls(value.get_secret_value())
        if not urls:
            raise SettingsError(f"{ALERT_URLS_ENV} is set but holds no URL")
        validate_alert_urls(urls)
        return value

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str) -> str:
        if has_credentials(value):
            raise SettingsError("DAGSTER_UI_URL must not carry credentials; the value is not shown")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise SettingsError(f"DAGSTER_UI_URL {value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _warehouses_apart(self) -> Settings:
        """The sandbox's file and the real one never coincide, working files included: else
        sample dollars would land beside real ones."""
        real = _warehouse_files(self.warehouse_path)
        sample = _warehouse_files(self.sandbox_warehouse_path)
        if real & sample:
            raise SettingsError(
                f"{SANDBOX_WAREHOUSE_ENV} {str(self.sandbox_warehouse_path)!r} and "
                f"{WAREHOUSE_ENV} {str(self.warehouse_path)!r} share a file: the sandbox's sample "
                "data needs a file of its own (e.g. data/sandbox.duckdb)"
            )
        return self

    @model_validator(mode="after")
    def _tokens_fit_url(self) -> Settings:
        if self.token is not None and self.tokens_list is not None:
            raise SettingsError(
                f"both {TOKEN_ENV} and {TOKENS_ENV} are set: set {TOKENS_ENV} alone (one token "
                f"or several, separated by commas) or {TOKEN_ENV} alone (one token)"
            )
        tokens = self.tokens
        if not tokens:
            if self.tokens_list is not None:
                raise SettingsError(f"{TOKENS_ENV} is set but holds no token")
            if self.api_url != DEFAULT_API_URL:
                raise SettingsError(
                    f"DIGITALOCEAN_API_URL is set but {TOKEN_ENV} is not: set the token "
                    "(scopes billing:read, account:read) or unset the URL to use the built-in "
                    "sandbox"
                )
            return self
        seen: dict[str, int] = {}
        for position, token in enumerate(tokens, start=1):
            name = token_place(position, self.token_env)
            value = token.get_secret_value()
            _check_token_shape(value, self.api_url, name)
            if value in seen:
                raise SettingsError(
                    f"{TOKENS_ENV}: entries {seen[value]} and {position} are the same token"
                )
            seen[value] = position
        return self

    @property
    def tokens(self) -> list[SecretStr]:
        """Every configured token, in order: one per team. Empty: the built-in sandbox."""
        if self.tokens_list is not None:
            return [SecretStr(t) for t in split_tokens(self.tokens_list.get_secret_value())]
        return [self.token] if self.token is not None else []

    @property
    def sample_data(self) -> bool:
        """Without a token, runs read the built-in sandbox: generated sample data."""
        return not self.tokens

    @property
    def warehouse(self) -> Path:
        """The analysts' file this process reads and writes: SANDBOX_WAREHOUSE_PATH for the
        sandbox's sample data, WAREHOUSE_PATH with a token, so the two never share a file."""
        return self.sandbox_warehouse_path if self.sample_data else self.warehouse_path

    @property
    def warehouse_env(self) -> str:
        """The variable that names `warehouse`, for messages."""
        return SANDBOX_WAREHOUSE_ENV if self.sample_data else WAREHOUSE_ENV

    @property
    def budgets(self) -> dict[str, Decimal]:
        """Per-team budget overrides, by team name or uuid."""
        return parse_budgets(self.budgets_text) if self.budgets_text else {}

    @property
    def owner_budgets(self) -> dict[str, Decimal]:
        """Budgets by project and by tag value (`project:<name>`, `tag:<key>:<value>`)."""
        return parse_owner_budgets(self.owner_budgets_text) if self.owner_budgets_text else {}

    @property
    def alert_urls(self) -> list[SecretStr]:
        """Every apprise URL alerts go to, in order (each a secret: it may hold a token)."""
        if self.alert_urls_text is None:
            return []
        return [SecretStr(url) for url in split_urls(self.alert_urls_text.get_secret_value())]

    @property
    def token_env(self) -> str:
        """The variable the tokens are read from (what an `EnvVar` should name)."""
        return TOKENS_ENV if self.tokens_list is not None else TOKEN_ENV

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, now: datetime | None = None
    ) -> Settings:
        """Validate `env` alone (neither `os.environ` nor `.env` is read), or, without it, the
        process environment and `.env`; raise `SettingsError` naming each bad variable.
        `now` (default: the clock) decides which month is the current one."""
        # The one place the settings read the clock, once per validation, unless given.
        reset = _NOW.set(now if now is not None else datetime.now(UTC))
        try:
            if env is None:
                return cls()
            return _GivenSettings(**env)
        except ValidationError as exc:
            error = _settings_error(exc)
        finally:
            _NOW.reset(reset)
        # Raised outside the except block: the ValidationError is neither cause nor context.
        raise error


class _GivenSettings(Settings):
    """Settings validated from the given mapping only."""

    def __repr_name__(self) -> str:
        return "Settings"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _settings_error(exc: ValidationError) -> SettingsError:
    """One SettingsError naming every bad variable; inputs are left out (one may be the token)."""
    messages = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in error["loc"])
        cause = error.get("ctx", {}).get("error")
        text = str(cause) if isinstance(cause, SettingsError) else error["msg"]
        messages.append(text if not name or name in text else f"{name}: {text}")
    return SettingsError("; ".join(messages))


@functools.cache
def get_settings() -> Settings:
    """The process's settings: `.env` in the working directory is loaded into the environment
    (without overriding variables already set), then everything is validated, once."""
    load_dotenv(Path.cwd() / ENV_FILE, override=False)
    return Settings.from_env()
