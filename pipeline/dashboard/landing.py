"""The landing page's figures per team, from the named queries: what the app and the report show.

Kept apart from the Streamlit script so the HTML report and the tests read the same figures the
page does, with the budget chosen as the `budget` check chooses it (BUDGETS, then BUDGET_USD).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pipeline.alerts.rules import RUN_RATE_DAYS, Thresholds, budget_of
from pipeline.dashboard.queries import Reader
from pipeline.settings import Settings


@dataclass(frozen=True)
class TeamFigures:
    """One team's headline numbers; a figure is None when its month is not loaded."""

    team_uuid: str
    team_name: str
    closed_period: str | None
    closed_total: Decimal | None
    open_period: str | None
    month_to_date: Decimal | None
    forecast: Decimal | None
    budget: Decimal | None
    days_loaded: int | None = None  # the open month's days of daily costs the forecast rests on
    days_in_month: int | None = None

    @property
    def over_budget(self) -> Decimal | None:
        """Forecast minus budget (negative: under it)."""
        if self.forecast is None or self.budget is None:
            return None
        return self.forecast - self.budget


def days_text(count: int) -> str:
    """`1 day`, `3 days`."""
    return f"{count} day" if count == 1 else f"{count} days"


def forecast_basis(days_loaded: int | None, days_in_month: int | None) -> str:
    """What the forecast rests on, so a month-end figure from a few days is read as rough.

    The forecast carries the mean daily cost of the last RUN_RATE_DAYS loaded days over the rest
    of the month; from fewer days one busy or quiet day moves the whole month."""
    if days_loaded is None or days_in_month is None:
        return "no forecast: the open month is not loaded"
    basis = f"forecast from {days_text(days_loaded)} of data (of {days_in_month})"
    rest = days_text(days_in_month - days_loaded)
    if days_loaded == 0:
        return f"{basis}: rough, no daily costs loaded yet, so it is the month to date only"
    if days_loaded < RUN_RATE_DAYS:
        steadier = f"steadier from {RUN_RATE_DAYS} days"
        return f"{basis}: rough, {rest} left on a {days_loaded}-day rate ({steadier})"
    if days_loaded >= days_in_month:
        return f"{basis}: the whole month is loaded"
    return f"{basis}: {rest} left on the last {RUN_RATE_DAYS} days' rate"


def share_text(part: Decimal | None, total: Decimal | None) -> str:
    """A share of spend as the page shows it, in percent to one decimal (`n/a` without spend)."""
    if not total:
        return "n/a"
    return f"{100 * (part or Decimal(0)) / total:.1f} %"


def thresholds_of(settings: Settings) -> Thresholds:
    """The budget settings as the alert rules read them."""
    return Thresholds.of(settings.alerts)


def team_figures(
    reader: Reader, teams: Sequence[tuple[str, str]], thresholds: Thresholds
) -> list[TeamFigures]:
    """Every given team's (uuid, name) figures, in the given order."""
    uuids = [uuid for uuid, _ in teams]
    closed = reader.read("last_closed_month", teams=uuids).set_index("team_uuid")
    to_date = reader.read("open_month_to_date", teams=uuids).set_index("team_uuid")
    forecast = reader.read("forecast", teams=uuids).set_index("team_uuid")

    def cell(frame, uuid: str, column: str):
        return frame.at[uuid, column] if uuid in frame.index else None

    return [
        TeamFigures(
            team_uuid=uuid,
            team_name=name,
            closed_period=cell(closed, uuid, "invoice_period"),
            closed_total=cell(closed, uuid, "invoice_total"),
            open_period=cell(to_date, uuid, "invoice_period"),
            month_to_date=cell(to_date, uuid, "month_to_date"),
            forecast=cell(forecast, uuid, "forecast"),
            budget=budget_of(thresholds, uuid, name),
            days_loaded=cell(forecast, uuid, "days_loaded"),
            days_in_month=cell(forecast, uuid, "days_in_month"),
        )
        for uuid, name in teams
    ]
