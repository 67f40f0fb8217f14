"""Settings: what a user can set, read from the environment and `.env`, validated before any
request or SQL runs.

- `values`: numbers, dollar amounts, budgets and months, as a user types them.
- `places`: the warehouse's files, checked for reading and (by writers) for writing.
- `urls`: the API's URL and tokens, the UI's URL, the apprise URLs alerts go to.
- `fields`: the settings the Dagster resources own (default, rule and variable of each).
- `environment`: the one place that reads the environment and `.env` onto all of them.
"""

from pipeline.settings.environment import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_START_PERIOD,
    ENV_FILE,
    Settings,
    load_settings,
)
from pipeline.settings.fields import (
    DEFAULT_RAW_KEEP,
    DEFAULT_TEAM_WORKERS,
    MAX_RAW_KEEP,
    AlertFields,
    ApiFields,
    DigitalOceanFields,
    RetentionFields,
)
from pipeline.settings.places import (
    DEFAULT_SANDBOX_WAREHOUSE_PATH,
    DEFAULT_WAREHOUSE_PATH,
    SAMPLE_DATA,
    SANDBOX_WAREHOUSE_ENV,
    WAREHOUSE_ENV,
    check_writable,
    validate_warehouse_path,
)
from pipeline.settings.urls import (
    ALERT_URLS_ENV,
    DEFAULT_API_URL,
    DEFAULT_UI_URL,
    TOKEN_ENV,
    TOKEN_PREFIXES,
    TOKENS_ENV,
    split_tokens,
    split_urls,
    token_place,
    validate_api_url,
)
from pipeline.settings.values import (
    SettingsError,
    parse_budgets,
    parse_owner_budgets,
    usd,
    validate_period,
    whole_number,
)

__all__ = [
    "ALERT_URLS_ENV",
    "DEFAULT_API_URL",
    "DEFAULT_DASHBOARD_PORT",
    "DEFAULT_RAW_KEEP",
    "DEFAULT_SANDBOX_WAREHOUSE_PATH",
    "DEFAULT_START_PERIOD",
    "DEFAULT_TEAM_WORKERS",
    "DEFAULT_UI_URL",
    "DEFAULT_WAREHOUSE_PATH",
    "ENV_FILE",
    "MAX_RAW_KEEP",
    "SAMPLE_DATA",
    "SANDBOX_WAREHOUSE_ENV",
    "TOKENS_ENV",
    "TOKEN_ENV",
    "TOKEN_PREFIXES",
    "WAREHOUSE_ENV",
    "AlertFields",
    "ApiFields",
    "DigitalOceanFields",
    "RetentionFields",
    "Settings",
    "SettingsError",
    "check_writable",
    "load_settings",
    "parse_budgets",
    "parse_owner_budgets",
    "split_tokens",
    "split_urls",
    "token_place",
    "usd",
    "validate_api_url",
    "validate_period",
    "validate_warehouse_path",
    "whole_number",
]
