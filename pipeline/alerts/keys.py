"""The alert keys: what makes an alert the same alert from one run to the next.

A key is remembered in `alerts_sent` once delivered, so its format is a promise to every
warehouse already holding keys: change it and each open alert is sent again. The anomaly keys
are built in SQL (`cost_anomalies_at` in `pipeline/warehouse/views.sql`, which the dashboard
reads too); these functions are the same format in Python, for the budget rule and for the
tests, and a test checks the two agree on a planted spike and new SKU.
"""

from __future__ import annotations


def spike_key(team_uuid: str | None, grain: str, subject: str, day: str) -> str:
    """`spike:<team>:<grain>:<subject>:<YYYY-MM-DD>`; grain `sku` or `service`."""
    return f"spike:{team_uuid or ''}:{grain}:{subject}:{day}"


def new_sku_key(team_uuid: str | None, sku: str) -> str:
    """`new_sku:<team>:<sku>`: one alert per SKU, however many days it costs."""
    return f"new_sku:{team_uuid or ''}:{sku}"


def budget_key(team_uuid: str, month: str, level: str, owner: str | None = None) -> str:
    """`budget:<team>:<YYYY-MM>:[<owner>:]<level>`: a warning and a failure are two alerts."""
    return f"budget:{team_uuid}:{month}:" + (f"{owner}:" if owner else "") + level


def idle_key(team_uuid: str, kind: str, resource_id: str, idle_since: str) -> str:
    """`idle:<team>:<kind>:<resource id>:<YYYY-MM-DD>`, the day it was first seen idle: a
    resource idle again after being in use is a new alert."""
    return f"idle:{team_uuid}:{kind}:{resource_id}:{idle_since}"
