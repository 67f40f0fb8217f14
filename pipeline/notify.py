"""Alert delivery through apprise: one message per alert to every URL of `ALERT_URLS`, once.

`alerts_sent` records each (alert, destination) after that destination accepted the message,
so an alert is never repeated to a URL, across runs and processes, and a URL that failed gets
it on the next run without the others getting it twice. A destination is named by its scheme
and a digest of the URL, never the URL: it may hold a webhook token, so no message, log line
or table ever shows it (a URL is named by its place, `entry 2 of ALERT_URLS (slack)`).

Delivery never fails the step: each send is retried (tenacity, bounded), and what still fails
is logged as a warning; the check's result reports the alert either way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.api.retry import Log
from pipeline.settings import ALERT_URLS_ENV, Settings
from pipeline.warehouse.store import Warehouse

if TYPE_CHECKING:
    from pipeline.alerts import Alert

ATTEMPTS = 3
WAIT_SECONDS = 0.5  # then 1 s: a webhook that is down for longer gets the alert next run
RECORD = """
    INSERT INTO alerts_sent VALUES ($key, $destination, $team, $kind, $level, $title, $now)
    ON CONFLICT DO NOTHING
"""
TYPES = {"warn": "warning", "fail": "failure"}  # apprise.NotifyType values
# apprise logs at DEBUG the URLs it posts to; keep its chatter (and any token) out of our logs.
logging.getLogger("apprise").setLevel(logging.ERROR)


class DeliveryError(RuntimeError):
    """A destination did not accept a message; retried, then logged."""


class UnusableUrlError(DeliveryError):
    """apprise does not know the URL: retrying will not help."""


@dataclass
class DeliveryReport:
    """(alert key, destination) pairs sent now, sent on an earlier run, and not delivered."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def destination_of(url: str) -> str:
    """A stable name for a URL that shows no part of it but its scheme."""
    scheme = url.partition("://")[0].lower()
    return f"{scheme}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def place_of(position: int, url: str) -> str:
    return f"entry {position} of {ALERT_URLS_ENV} ({url.partition('://')[0].lower()})"


def send(url: str, title: str, body: str, level: str) -> None:
    """One message to one URL; raises DeliveryError when it was not accepted."""
    import apprise  # here, not at the top: 75 ms to import, and most runs send nothing

    destination = apprise.Apprise()
    if not destination.add(url):
        raise UnusableUrlError("apprise does not know this kind of URL")
    if not destination.notify(
        title=title, body=body, notify_type=apprise.NotifyType(TYPES.get(level, "info"))
    ):
        raise DeliveryError("the destination did not accept the message")


def send_with_retries(url: str, alert: Alert, body: str) -> None:
    retrying = Retrying(
        stop=stop_after_attempt(ATTEMPTS),
        wait=wait_exponential(multiplier=WAIT_SECONDS, max=4),
        retry=retry_if_exception(
            lambda exc: isinstance(exc, DeliveryError) and not isinstance(exc, UnusableUrlError)
        ),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            send(url, alert.title, body, alert.level)


def already_sent(store: Warehouse, keys: Sequence[str]) -> set[tuple[str, str]]:
    found = store.query(
        "SELECT alert_key, destination FROM alerts_sent "
        "WHERE list_contains(CAST($keys AS VARCHAR[]), alert_key)",
        {"keys": list(keys)},
    )
    return set(zip(found["alert_key"], found["destination"], strict=True))


def record(store: Warehouse, alert: Alert, destination: str) -> None:
    with store.transaction() as con:
        con.execute(
            RECORD,
            {
                "key": alert.key,
                "destination": destination,
                "team": alert.team_uuid,
                "kind": alert.kind,
                "level": alert.level,
                "title": alert.title,
                "now": pd.Timestamp.now(tz="UTC"),
            },
        )


def deliver(
    alerts: Sequence[Alert],
    settings: Settings,
    store: Warehouse,
    log: Log,
    *,
    run_id: str | None = None,
    urls: Sequence[SecretStr] | None = None,
) -> DeliveryReport:
    """Send every alert not yet sent to each URL; record each success at once. Never raises
    for a delivery problem."""
    report = DeliveryReport()
    urls = settings.alert_urls if urls is None else urls
    if not alerts or not urls:
        return report
    done = already_sent(store, [alert.key for alert in alerts])
    for alert in alerts:
        body = alert.body(settings.ui_url, run_id)
        for position, secret in enumerate(urls, start=1):
            url = secret.get_secret_value()
            destination = destination_of(url)
            if (alert.key, destination) in done:
                report.skipped.append((alert.key, destination))
                continue
            try:
                send_with_retries(url, alert, body)
            # Anything a plugin raises: a notification must never fail the load.
            except Exception as exc:  # noqa: BLE001
                report.failed.append((alert.key, destination))
                tries = 1 if isinstance(exc, UnusableUrlError) else ATTEMPTS
                # A plugin's own error text may quote the URL (and its token): never show it.
                detail = str(exc).replace(url, place_of(position, url))
                log.warning(
                    f"alert {alert.key} not delivered to {place_of(position, url)} after "
                    f"{tries} attempt(s): {detail}; it will be tried again on the next run"
                )
                continue
            record(store, alert, destination)
            done.add((alert.key, destination))
            report.sent.append((alert.key, destination))
            log.info(f"alert {alert.key} sent to {place_of(position, url)}")
    return report
