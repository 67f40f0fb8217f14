"""The settings the Dagster resources own: each field's variable, rule and default, declared
once, on one line, and checked whenever the resource is built (from the environment, or from a
run's config in the UI).

`pipeline.defs.resources` builds its resources on these classes (`class AlertsResource(
AlertFields, dg.ConfigurableResource)`), so a field and its rule are the resource's own; they
are declared apart from Dagster so that the readers (dashboard, report, focus, prune) validate
the same settings without loading it. The environment layer (`pipeline.settings.environment`)
maps the variables onto the fields by each field's `Variable`. Values Dagster's config cannot
hold (Decimal) are kept as exact decimal strings (`Thresholds.of` in `pipeline.alerts.rules`
reads them back).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

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

Rule = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Variable:
    """A field's variable, and the rule a given value must meet: `rule(value, name)` returns
    the value to keep or raises a SettingsError naming `name`. None (unset) is never checked."""

    name: str
    rule: Rule | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        rule, name = self.rule, self.name
        if rule is None:
            return schema

        def check(value: Any) -> Any:
            return value if value is None or deferred(value) else rule(value, name)

        return core_schema.no_info_before_validator_function(check, schema)


def deferred(value: Any) -> bool:
    """A value read at launch, not yet known: Dagster's `EnvVar` (a `str` that refuses to be
    read before then). The rule checks it when the run builds the resource with its value."""
    return isinstance(value, str) and type(value) is not str and hasattr(value, "get_value")


def variables(model: type[BaseModel]) -> dict[str, str]:
    """Each field of `model` that a variable sets, and that variable."""
    return {
        field: meta.name
        for field, info in model.model_fields.items()
        for meta in info.metadata
        if isinstance(meta, Variable)
    }


def between(low: int, high: int, noun: str) -> Rule:
    """A whole number from `low` to `high` (`noun` says what it counts)."""
    return lambda value, name: whole_number(value, name, low, high, noun)


def above_zero(ceiling: Decimal) -> Rule:
    """A number above 0 and at most `ceiling`, kept as a decimal string."""
    return lambda value, name: str(positive(value, name, ceiling))


def dollars(value: Any, name: str) -> str:
    """An amount in dollars, kept as a decimal string with two decimals."""
    return str(usd(str(value), name))


def budgets_by(parse: Callable[[str | Mapping[str, Any]], dict[str, Decimal]]) -> Rule:
    """A map of budgets, given as its variable's text (`Team A=5000, …`, parsed once, here) or
    as a mapping (a run's config), kept as decimal strings."""

    def check(value: Any, name: str) -> Any:
        if not isinstance(value, str | dict):
            return value  # pydantic says what it should be
        return {key: str(amount) for key, amount in parse(value).items()}

    return check


class ApiFields(BaseModel):
    """Both billing API resources' (the real API's and the sandbox's)."""

    team_workers: Annotated[
        int, Variable("TEAM_WORKERS", between(1, MAX_TEAM_WORKERS, "how many teams at once"))
    ] = DEFAULT_TEAM_WORKERS


class DigitalOceanFields(BaseModel):
    """The DigitalOcean API resource's: where its tokens go."""

    api_url: Annotated[
        str, Variable("DIGITALOCEAN_API_URL", lambda value, name: validate_api_url(str(value)))
    ] = DEFAULT_API_URL


class RetentionFields(BaseModel):
    """The warehouse resource's: how many older raw fetches it keeps."""

    raw_keep: Annotated[
        int,
        Variable("RAW_KEEP", between(0, MAX_RAW_KEEP, "the number of older raw fetches to keep")),
    ] = DEFAULT_RAW_KEEP


class AlertFields(BaseModel):
    """The alerts resource's: budgets and anomaly thresholds (the cost_anomalies view in
    views.sql is built with the same defaults), and the UI the messages link to."""

    budget_usd: Annotated[str | None, Variable("BUDGET_USD", dollars)] = None
    # By team name or uuid.
    budgets: Annotated[dict[str, str], Variable("BUDGETS", budgets_by(parse_budgets))] = {}
    # By `project:<name>` or `tag:<key>:<value>`.
    owner_budgets: Annotated[
        dict[str, str], Variable("OWNER_BUDGETS", budgets_by(parse_owner_budgets))
    ] = {}
    budget_warn_share: Annotated[
        str, Variable("BUDGET_WARN_SHARE", lambda value, name: str(share(value, name)))
    ] = "0.8"
    spike_mads: Annotated[str, Variable("ANOMALY_MADS", above_zero(MAX_SPIKE_MADS))] = "6"
    spike_min_usd: Annotated[str, Variable("ANOMALY_MIN_USD", dollars)] = "50"
    spike_min_ratio: Annotated[str, Variable("ANOMALY_MIN_RATIO", above_zero(MAX_SPIKE_RATIO))] = (
        "10"
    )
    new_sku_min_usd: Annotated[str, Variable("NEW_SKU_MIN_USD", dollars)] = "10"
    alert_lookback_days: Annotated[
        int, Variable("ALERT_LOOKBACK_DAYS", between(1, 366, "a whole number of days"))
    ] = 7
    # Idle resources: a snapshot older than this is idle; a newly idle resource whose last month
    # cost at least IDLE_MIN_USD is alerted once.
    snapshot_max_age_days: Annotated[
        int, Variable("SNAPSHOT_MAX_AGE_DAYS", between(1, 3660, "a whole number of days"))
    ] = 90
    idle_min_usd: Annotated[str, Variable("IDLE_MIN_USD", dollars)] = "5.00"
    ui_url: Annotated[
        str, Variable("DAGSTER_UI_URL", lambda value, name: validate_ui_url(str(value)))
    ] = DEFAULT_UI_URL
