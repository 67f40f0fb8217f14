"""Everything Dagster loads: assets and checks made from the source declarations, partitions,
schedules, freshness, the alert checks and the resources. `definitions.defs` builds them."""
