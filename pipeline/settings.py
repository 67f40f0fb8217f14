"""Settings from the environment, validated before any request or SQL runs.

Every value a user can set is checked here once, so a typo fails with a message that names the
setting instead of surfacing later as an HTTP or SQL error.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_API_URL = "https://api.digitalocean.com"
DEFAULT_WAREHOUSE_PATH = "data/warehouse.duckdb"
DEFAULT_START_PERIOD = "2023-01"

_PERIOD = re.compile(r"(?P<year>\d{4})-(?P<month>\d{2})")


class SettingsError(ValueError):
    """A setting or partition key is malformed; the message names which one."""


def validate_period(value: str, what: str = "invoice period") -> str:
    """Return `value` if it is a real `YYYY-MM` month, else raise naming `what`."""
    match = _PERIOD.fullmatch(value) if isinstance(value, str) else None
    if not match or not 1 <= int(match["month"]) <= 12 or int(match["year"]) < 2000:
        raise SettingsError(f"{what} {value!r} is not a month in YYYY-MM form (e.g. 2024-05)")
    return value


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
    """The token goes only to this URL: HTTPS, or plain HTTP on loopback (sandbox, tests)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"DIGITALOCEAN_API_URL {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(
            f"DIGITALOCEAN_API_URL {url!r} uses plain http: the token would travel unencrypted. "
            "Use https (plain http is allowed only for loopback hosts)."
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SettingsError(
            "DIGITALOCEAN_API_URL must be a bare base URL (no query or credentials)"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Settings:
    api_url: str
    token_set: bool
    warehouse_path: Path
    start_period: str

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        warehouse = env.get("WAREHOUSE_PATH") or DEFAULT_WAREHOUSE_PATH
        if "\x00" in warehouse:
            raise SettingsError("WAREHOUSE_PATH contains a NUL byte")
        return cls(
            api_url=validate_api_url(env.get("DIGITALOCEAN_API_URL") or DEFAULT_API_URL),
            token_set=bool(env.get("DIGITALOCEAN_TOKEN")),
            warehouse_path=Path(warehouse),
            start_period=validate_period(
                env.get("INVOICE_START_PERIOD") or DEFAULT_START_PERIOD, "INVOICE_START_PERIOD"
            ),
        )
