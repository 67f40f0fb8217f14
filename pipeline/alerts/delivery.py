"""Alert delivery through apprise: one message per alert to every URL of `ALERT_URLS`, once.

`alerts_sent` records each (alert, destination) after that destination accepted the message,
so an alert is never repeated to a URL, across runs and processes, and a URL that failed gets
it on the next run without the others getting it twice. A destination is named by its scheme
and a digest of the URL, never the URL: it may hold a webhook token, so no message, log line
or table ever shows it (a URL is named by its place, `entry 2 of ALERT_URLS (slack)`).

Delivery never fails the step: each send is retried (tenacity, bounded), and what still fails
is logged as a warning; the check's result reports the alert either way. Sending touches no
warehouse: `already_sent` reads the ledger before, `record_sent` writes it after, each a short
unit of work, so a webhook that never answers holds no file open.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.alerts.rules import Alert
from pipeline.api.log import Log
from pipeline.settings import ALERT_URLS_ENV
from pipeline.warehouse.store import Warehouse

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
    """(alert key, destination) pairs the ledger says were delivered."""
    if not keys:
        return set()
    found = store.query(
        "SELECT alert_key, destination FROM alerts_sent "
        "WHERE list_contains(CAST($keys AS VARCHAR[]), alert_key)",
        {"keys": list(keys)},
    )
    return set(zip(found["alert_key"], found["destination"], strict=True))


def record_sent(store: Warehouse, alerts: Sequence[Alert], report: DeliveryReport) -> None:
    """Write what was delivered into the ledger, in one transaction."""
    if not report.sent:
        return
    by_key = {alert.key: alert for alert in alerts}
    now = pd.Timestamp.now(tz="UTC")
    with store.transaction() as con:
        for key, destination in report.sent:
            alert = by_key[key]
            con.execute(
                RECORD,
                {
                    "key": alert.key,
                    "destination": destination,
                    "team": alert.team_uuid,
                    "kind": alert.kind,
                    "level": alert.level,
                    "title": alert.title,
                    "now": now,
                },
            )


def deliver(
    alerts: Sequence[Alert],
    urls: Sequence[SecretStr],
    ui_url: str,
    log: Log,
    *,
    run_id: str | None = None,
    done: set[tuple[str, str]] | None = None,
) -> DeliveryReport:
    """Send every alert not in `done` (pairs already delivered) to each URL. Never raises for a
    delivery problem; the caller records `report.sent`."""
    report = DeliveryReport()
    done = set(done or ())
    for alert in alerts:
        body = alert.body(ui_url, run_id)
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
            done.add((alert.key, destination))
            report.sent.append((alert.key, destination))
            log.info(f"alert {alert.key} sent to {place_of(position, url)}")
    return report
