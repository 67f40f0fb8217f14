"""Every source the pipeline loads, declared; `pipeline.engine` runs them all the same way."""

from pipeline.sources.balance import BALANCE
from pipeline.sources.base import Source, Table
from pipeline.sources.billing_history import HISTORY
from pipeline.sources.insights import INSIGHTS
from pipeline.sources.inventory import INVENTORY, INVENTORY_SCOPES
from pipeline.sources.invoices import INVOICES
from pipeline.sources.summaries import SUMMARIES

SOURCES: tuple[Source, ...] = (INVOICES, SUMMARIES, INSIGHTS, HISTORY, BALANCE, *INVENTORY)
# Every table the sources declare, by name: what export writes and what holds per-team rows.
TABLES: dict[str, Table] = {table.name: table for source in SOURCES for table in source.tables}

__all__ = [
    "BALANCE",
    "HISTORY",
    "INSIGHTS",
    "INVENTORY",
    "INVENTORY_SCOPES",
    "INVOICES",
    "SOURCES",
    "SUMMARIES",
    "TABLES",
    "Source",
    "Table",
]
