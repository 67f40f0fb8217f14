"""Every source the pipeline loads, declared; `pipeline.engine` runs them all the same way."""

from pipeline.sources.base import Source
from pipeline.sources.invoices import INVOICES
from pipeline.sources.summaries import SUMMARIES

SOURCES: tuple[Source, ...] = (INVOICES, SUMMARIES)

__all__ = ["INVOICES", "SOURCES", "SUMMARIES", "Source"]
