"""The one place that reads the environment and `.env` and maps them onto the settings.

Every value a user can set is checked once, when `Settings.from_env()` builds them, so a typo
fails with a message that names the variable instead of surfacing later as an HTTP or SQL
error; every bad variable is named in one `SettingsError`, and no message ever contains a
token. The resources' own settings (`pipeline.settings.fields`: their defaults, rules and
variables) are built here as they are; the rest (tokens, warehouse files, the first month, the
dashboard's port) are this module's.

Each entry point reads them once, explicitly: `load_settings()` loads `.env` from the working
directory into the process environment (variables already set win), so Dagster's
`EnvVar("DIGITALOCEAN_TOKEN")` finds the token at launch whichever entry point started the
process, then validates. Nothing is cached: a test sets the environment and reads again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from dotenv import dotenv_values, load_dotenv
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pipeline.settings.fields import (
    AlertFields,
    ApiFields,
    DigitalOceanFields,
    RetentionFields,
    Variable,
    between,
    variables,
)
from pipeline.settings.places import (
    DEFAULT_SANDBOX_WAREHOUSE_PATH,
    DEFAULT_WAREHOUSE_PATH,
    SANDBOX_WAREHOUSE_ENV,
    WAREHOUSE_ENV,
    validate_warehouse_path,
    warehouse_files,
)
from pipeline.settings.urls import (
    ALERT_URLS_ENV,
    DEFAULT_API_URL,
    TOKEN_ENV,
    TOKENS_ENV,
    check_token_shape,
    split_tokens,
    split_urls,
    token_place,
    validate_alert_urls,
)
from pipeline.settings.values import SettingsError, validate_start_period

ENV_FILE = ".env"
DEFAULT_START_PERIOD = "2023-01"
DEFAULT_DASHBOARD_PORT = 8501  # `make dashboard` (Streamlit's own default)
DEFAULT_DEAD_RUN_CHECK_SECONDS = 60  # how often the daemon looks for runs whose process is gone


def _warehouse(value: Any, name: str) -> Path:
    """WAREHOUSE_PATH, SANDBOX_WAREHOUSE_PATH: a place a reader can use (`places`)."""
    return validate_warehouse_path(Path(value), name)


def _alert_urls(value: Any, name: str) -> Any:
    """ALERT_URLS: one URL or more, each one apprise can use; none of them ever shown."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    urls = split_urls(text)
    if not urls:
        raise SettingsError(f"{name} is set but holds no URL")
    validate_alert_urls(urls)
    return value


class Settings(BaseModel):
    """What a user can set, read from the environment and `.env` (the environment wins).

    A variable set to the empty string counts as unset. Build one with `load_settings()` (the
    process's settings) or `Settings.from_env(mapping)` (exactly the given variables)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, validate_default=True)

    # The resources' settings, by the attribute that holds them here; the fields below are
    # this model's own (each with its Variable).
    GROUPS: ClassVar[dict[str, type[BaseModel]]] = {
        "digitalocean": DigitalOceanFields,
        "alerts": AlertFields,
        "api": ApiFields,
        "retention": RetentionFields,
    }

    token: Annotated[SecretStr | None, Variable(TOKEN_ENV)] = None
    tokens_list: Annotated[SecretStr | None, Variable(TOKENS_ENV)] = None
    digitalocean: DigitalOceanFields = Field(default_factory=DigitalOceanFields)
    warehouse_path: Annotated[Path, Variable(WAREHOUSE_ENV, _warehouse)] = Path(
        DEFAULT_WAREHOUSE_PATH
    )
    sandbox_warehouse_path: Annotated[Path, Variable(SANDBOX_WAREHOUSE_ENV, _warehouse)] = Path(
        DEFAULT_SANDBOX_WAREHOUSE_PATH
    )
    start_period: Annotated[str, Variable("INVOICE_START_PERIOD")] = DEFAULT_START_PERIOD
    alerts: AlertFields = Field(default_factory=AlertFields)
    # ALERT_URLS may hold webhook tokens: a secret, never shown, like the API tokens.
    alert_urls_text: Annotated[SecretStr | None, Variable(ALERT_URLS_ENV, _alert_urls)] = None
    api: ApiFields = Field(default_factory=ApiFields)
    retention: RetentionFields = Field(default_factory=RetentionFields)
    dashboard_port: Annotated[int, Variable("DASHBOARD_PORT", between(1, 65535, "a TCP port"))] = (
        DEFAULT_DASHBOARD_PORT
    )
    dead_run_check_seconds: Annotated[
        int, Variable("DEAD_RUN_CHECK_SECONDS", between(1, 86400, "a number of seconds"))
    ] = DEFAULT_DEAD_RUN_CHECK_SECONDS

    @field_validator("start_period")
    @classmethod
    def _start_period(cls, value: str, info: ValidationInfo) -> str:
        """Checked against "now", which the validation is given (`from_env(now=)`)."""
        now = (info.context or {}).get("now")
        if now is None:
            raise SettingsError("settings are built by Settings.from_env(), which says when now is")
        return validate_start_period(value, now)

    @model_validator(mode="after")
    def _warehouses_apart(self) -> Settings:
        """The sandbox's file and the real one never coincide, working files included: else
        sample dollars would land beside real ones."""
        real = warehouse_files(self.warehouse_path)
        sample = warehouse_files(self.sandbox_warehouse_path)
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
        api_url = self.digitalocean.api_url
        if not tokens:
            if self.tokens_list is not None:
                raise SettingsError(f"{TOKENS_ENV} is set but holds no token")
            if api_url != DEFAULT_API_URL:
                raise SettingsError(
                    f"DIGITALOCEAN_API_URL is set but {TOKEN_ENV} is not: set the token "
                    "(scopes billing:read, account:read) or unset the URL to use the built-in "
                    "sandbox"
                )
            return self
        seen: dict[str, int] = {}
        for position, token in enumerate(tokens, start=1):
            value = token.get_secret_value()
            check_token_shape(value, api_url, token_place(position, self.token_env))
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
    def token_env(self) -> str:
        """The variable the tokens are read from (what an `EnvVar` should name)."""
        return TOKENS_ENV if self.tokens_list is not None else TOKEN_ENV

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
    def alert_urls(self) -> list[SecretStr]:
        """Every apprise URL alerts go to, in order (each a secret: it may hold a token)."""
        if self.alert_urls_text is None:
            return []
        return [SecretStr(url) for url in split_urls(self.alert_urls_text.get_secret_value())]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, now: datetime | None = None
    ) -> Settings:
        """Validate `env` alone (neither `os.environ` nor `.env` is read), or, without it, the
        process environment and `.env`; raise `SettingsError` naming each bad variable.
        `now` (default: the clock, read once here) decides which month is the current one."""
        given = read_environment() if env is None else env
        data = cls._fields_of({key: value for key, value in given.items() if value != ""})
        try:
            return cls.model_validate(data, context={"now": now or datetime.now(UTC)})
        except ValidationError as exc:
            error = _settings_error(exc)
        # Raised outside the except block: the ValidationError is neither cause nor context.
        raise error

    @classmethod
    def _fields_of(cls, given: Mapping[str, str]) -> dict[str, Any]:
        """The variables set, by the field (and the resource's fields) each one sets."""
        data: dict[str, Any] = {
            field: given[name] for field, name in variables(cls).items() if name in given
        }
        for attribute, group in cls.GROUPS.items():
            data[attribute] = {
                field: given[name] for field, name in variables(group).items() if name in given
            }
        return data

    @classmethod
    def variable_names(cls) -> frozenset[str]:
        """Every variable the settings read: this model's and the resources' fields'."""
        models: list[type[BaseModel]] = [cls, *cls.GROUPS.values()]
        return frozenset(name for model in models for name in variables(model).values())

    @classmethod
    def variable(cls, location: tuple[int | str, ...]) -> str:
        """The variable an error's location (`("alerts", "spike_mads")`) stands for."""
        if not location:
            return ""
        head = str(location[0])
        if head in cls.GROUPS and len(location) > 1:
            return variables(cls.GROUPS[head]).get(str(location[1]), head)
        return variables(cls).get(head, head)


def read_environment() -> dict[str, str]:
    """`.env` in the working directory, overridden by the process environment."""
    found = dotenv_values(ENV_FILE, encoding="utf-8")
    return {**{key: value for key, value in found.items() if value is not None}, **os.environ}


def _settings_error(exc: ValidationError) -> SettingsError:
    """One SettingsError naming every bad variable; inputs are left out (one may be the token)."""
    messages = []
    for error in exc.errors(include_url=False, include_input=False):
        name = Settings.variable(error["loc"])
        cause = error.get("ctx", {}).get("error")
        text = str(cause) if isinstance(cause, SettingsError) else error["msg"]
        messages.append(text if not name or name in text else f"{name}: {text}")
    return SettingsError("; ".join(messages))


def load_settings() -> Settings:
    """The process's settings, read afresh: `.env` in the working directory is loaded into the
    environment (without overriding variables already set), then everything is validated."""
    load_dotenv(Path.cwd() / ENV_FILE, override=False)
    return Settings.from_env()
