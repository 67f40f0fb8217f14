"""`make doctor`: is this set-up ready to run? One line per check, ✓ or ✗, and what to fix.

Like `dbt debug`: it reads the settings, calls the API with the pipeline's own client (the
built-in sandbox when no token is set, so that path is checked too), opens the warehouse file
and reads Dagster's instance through its public API. It creates the warehouse's folder if it is
missing and nothing else: no migration, no table, no run, no new warehouse file. The token is
never printed; the team it belongs to is.

One module per check group, each with the functions the runner calls: `configuration`
(`check_settings`), `tokens` (`check_token`), `warehouse` (`check_warehouse`,
`check_publication`), `instance` (`check_dagster`); `runner` prints the lines and sets the exit
code. Command line: `python -m pipeline.cli.doctor` (exit code 0 when every check passed, else 1).
"""
