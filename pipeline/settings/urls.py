"""Where requests and messages go, and the secrets they carry: the API's base URL and its
tokens, the Dagster UI's URL, the apprise URLs alerts go to. No message shows a token, a
credential or an alert URL (it may hold a webhook token)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from pipeline.settings.values import SettingsError

DEFAULT_API_URL = "https://api.digitalocean.com"
DEFAULT_UI_URL = "http://localhost:3000"
# Personal access tokens, OAuth access tokens and OAuth refresh tokens.
TOKEN_PREFIXES = ("dop_v1_", "doo_v1_", "dor_v1_")
TOKEN_ENV = "DIGITALOCEAN_TOKEN"  # one team
TOKENS_ENV = "DIGITALOCEAN_TOKENS"  # several teams: tokens separated by commas
ALERT_URLS_ENV = "ALERT_URLS"


def split_tokens(text: str) -> list[str]:
    """`DIGITALOCEAN_TOKENS`' entries: separated by commas, spaces around them allowed."""
    return [part.strip() for part in text.split(",") if part.strip()]


def token_place(position: int, env: str = TOKENS_ENV) -> str:
    """How a token is named where its value may not be: `token 2 of DIGITALOCEAN_TOKENS`."""
    return TOKEN_ENV if env == TOKEN_ENV else f"token {position} of {TOKENS_ENV}"


def split_urls(text: str) -> list[str]:
    """`ALERT_URLS`' entries: separated by commas and/or whitespace."""
    return [part for part in re.split(r"[,\s]+", text) if part]


def has_credentials(url: str) -> bool:
    """Whether a URL may carry userinfo (`user:password@`). Any `@` counts, so that a URL
    whose scheme is missing or mistyped, which urlsplit cannot take apart, is not shown either."""
    return "@" in url


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


def validate_ui_url(url: str) -> str:
    """`DAGSTER_UI_URL`, the base of the links in alert messages: http(s), no credentials."""
    if has_credentials(url):
        raise SettingsError("DAGSTER_UI_URL must not carry credentials; the value is not shown")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"DAGSTER_UI_URL {url!r} is not an http(s) URL")
    return url.rstrip("/")


def check_token_shape(token: str, api_url: str, name: str = TOKEN_ENV) -> None:
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
