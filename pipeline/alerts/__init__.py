"""Budget and anomaly alerts without Dagster: the rules (`rules`) and delivery through apprise
(`delivery`). `pipeline.defs.alert_checks` runs them as asset checks after every load."""
