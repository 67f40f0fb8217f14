"""The settings, as every entry point reads them: which `.env` was read, and whether runs use
the built-in sandbox or the real API."""

from __future__ import annotations

from pathlib import Path

from pipeline.cli.doctor.check import Check
from pipeline.settings import ENV_FILE, TOKENS_ENV, Settings, SettingsError, load_settings


def check_settings(cwd: Path | None = None) -> Check:
    """The settings validate; says which `.env` was read and which API runs use."""
    return read_settings(cwd)[0]


def read_settings(cwd: Path | None = None) -> tuple[Check, Settings | None]:
    """The settings, read once for every check that needs them (None when they do not
    validate), and the check that says so. `SettingsError` never contains the token."""
    env_file = (cwd or Path.cwd()) / ENV_FILE
    source = f"read {env_file}" if env_file.is_file() else f"no {ENV_FILE} in {env_file.parent}"
    try:
        settings = load_settings()
    except SettingsError as exc:
        where = f"in {env_file} or the environment" if env_file.is_file() else "in the environment"
        return Check("configuration", False, f"{exc}. Fix it {where} ({source})"), None
    tokens = len(settings.tokens)
    api_url = settings.digitalocean.api_url
    if not tokens:
        mode = (
            "no DIGITALOCEAN_TOKEN, so runs use the built-in sandbox API (sample data, kept in "
            f"{settings.warehouse}, apart from WAREHOUSE_PATH)"
        )
    elif settings.token_env == TOKENS_ENV:
        mode = (
            f"{TOKENS_ENV} holds {tokens} token(s), so runs load {tokens} team(s) from the API "
            f"at {host_of(api_url)}"
        )
    else:
        mode = f"DIGITALOCEAN_TOKEN is set, so runs use the API at {host_of(api_url)}"
    return Check("configuration", True, f"{source}; {mode}"), settings


def host_of(url: str) -> str:
    """A URL as the lines name it: host and port, without the scheme."""
    return url.split("://", 1)[-1]
