"""The settings the Dagster resources own: each one's default, written here once, and its
validation, run whenever the resource is built (from the environment, or from a run's config).

`pipeline.defs.resources` builds its resources on these classes (`class AlertsResource(
AlertFields, dg.ConfigurableResource)`), so a field and its rule are the resource's own; they
are declared apart from Dagster so that the readers (dashboard, report, focus, prune) validate
the same settings without loading it. `ENV` names each field's variable: the environment layer
(`pipeline.settings.environment`) maps the variables onto the fields through it, and messages
name the variable. Values Dagster's config cannot hold (Decimal) are kept as decimal strings,
read exactly (`Thresholds.of`, in `pipeline.alerts.rules`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationInfo, field_validator

from pipeline.settings.urls import (
    DEFAULT_API_URL,
    DEFAULT_UI_URL,
    validate_api_url,
    validate_ui_url,
)
from pipeline.settings.values import (
    parse_budgets,
    parse_owner_budgets,
    positive,
    share,
    usd,
    whole_number,
)

# Teams fetched at once (each with its own client pool); the default of pipeline.teams too.
DEFAULT_TEAM_WORKERS = 8
MAX_TEAM_WORKERS = 64
# Raw retention: the latest good fetch of each team × month × source, and this many older ones.
# Also the store's default (pipeline.warehouse.store), for a warehouse opened by hand.
DEFAULT_RAW_KEEP = 3
MAX_RAW_KEEP = 1000
# The anomaly thresholds' ceilings: beyond them no day can ever alert, so a value there is a typo.
MAX_SPIKE_MADS = Decimal(1000)
MAX_SPIKE_RATIO = Decimal(1_000_000)


class ResourceFields(BaseModel):
    """Fields of a resource that a variable sets; `ENV` maps each field to its variable."""

    ENV: ClassVar[dict[str, str]] = {}

    @classmethod
    def variable(cls, info: ValidationInfo) -> str:
        """The variable that sets the field being validated, as messages name it."""
        return cls.ENV[str(info.field_name)]


class ApiFields(ResourceFields):
    """Both billing API resources' (the real API's and the sandbox's)."""

    ENV: ClassVar[dict[str, str]] = {"team_workers": "TEAM_WORKERS"}

    team_workers: int = DEFAULT_TEAM_WORKERS

    @field_validator("team_workers", mode="before")
    @classmethod
    def _team_workers(cls, value: Any) -> int:
        return whole_number(value, "TEAM_WORKERS", 1, MAX_TEAM_WORKERS, "how many teams at once")


class DigitalOceanFields(ResourceFields):
    """The DigitalOcean API resource's: where its tokens go."""

    ENV: ClassVar[dict[str, str]] = {"api_url": "DIGITALOCEAN_API_URL"}

    api_url: str = DEFAULT_API_URL

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return validate_api_url(value)


class RetentionFields(ResourceFields):
    """The warehouse resource's: how many older raw fetches it keeps."""

    ENV: ClassVar[dict[str, str]] = {"raw_keep": "RAW_KEEP"}

    raw_keep: int = DEFAULT_RAW_KEEP

    @field_validator("raw_keep", mode="before")
    @classmethod
    def _raw_keep(cls, value: Any) -> int:
        return whole_number(
            value, "RAW_KEEP", 0, MAX_RAW_KEEP, "the number of older raw fetches to keep"
        )


def _texts(amounts: dict[str, Decimal]) -> dict[str, str]:
    """Amounts as Dagster's config holds them: exact decimal strings."""
    return {key: str(amount) for key, amount in amounts.items()}


class AlertFields(ResourceFields):
    """The alerts resource's: budgets and anomaly thresholds (the cost_anomalies view is built
    with the same defaults), and the UI the messages link to. Amounts and shares are decimal
    strings; a budget map may be given as its variable's text (`Team A=5000, …`), parsed once
    here."""

    ENV: ClassVar[dict[str, str]] = {
        "budget_usd": "BUDGET_USD",
        "budgets": "BUDGETS",
        "owner_budgets": "OWNER_BUDGETS",
        "budget_warn_share": "BUDGET_WARN_SHARE",
        "spike_mads": "ANOMALY_MADS",
        "spike_min_usd": "ANOMALY_MIN_USD",
        "spike_min_ratio": "ANOMALY_MIN_RATIO",
        "new_sku_min_usd": "NEW_SKU_MIN_USD",
        "alert_lookback_days": "ALERT_LOOKBACK_DAYS",
        "ui_url": "DAGSTER_UI_URL",
    }

    budget_usd: str | None = None
    budgets: dict[str, str] = {}  # by team name or uuid
    owner_budgets: dict[str, str] = {}  # by `project:<name>` or `tag:<key>:<value>`
    budget_warn_share: str = "0.8"
    spike_mads: str = "6"
    spike_min_usd: str = "50"
    spike_min_ratio: str = "10"
    new_sku_min_usd: str = "10"
    alert_lookback_days: int = 7
    ui_url: str = DEFAULT_UI_URL

    @field_validator("budget_usd", "spike_min_usd", "new_sku_min_usd", mode="before")
    @classmethod
    def _amount(cls, value: Any, info: ValidationInfo) -> Any:
        return None if value is None else str(usd(str(value), cls.variable(info)))

    @field_validator("budgets", mode="before")
    @classmethod
    def _budgets(cls, value: Any) -> Any:
        return _texts(parse_budgets(value)) if isinstance(value, str | dict) else value

    @field_validator("owner_budgets", mode="before")
    @classmethod
    def _owner_budgets(cls, value: Any) -> Any:
        return _texts(parse_owner_budgets(value)) if isinstance(value, str | dict) else value

    @field_validator("budget_warn_share", mode="before")
    @classmethod
    def _warn_share(cls, value: Any) -> str:
        return str(share(value, "BUDGET_WARN_SHARE"))

    @field_validator("spike_mads", "spike_min_ratio", mode="before")
    @classmethod
    def _positive(cls, value: Any, info: ValidationInfo) -> str:
        ceiling = {"spike_mads": MAX_SPIKE_MADS, "spike_min_ratio": MAX_SPIKE_RATIO}
        return str(positive(value, cls.variable(info), ceiling[str(info.field_name)]))

    @field_validator("alert_lookback_days", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> int:
        return whole_number(value, "ALERT_LOOKBACK_DAYS", 1, 366, "a whole number of days")

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str) -> str:
        return validate_ui_url(value)
