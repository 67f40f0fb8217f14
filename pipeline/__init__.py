"""DigitalOcean bills into DuckDB, orchestrated by Dagster.

The objects that exist when this package is first imported (in a `dagster` command: all of
Dagster, imported before the project's code) are moved out of the garbage collector's reach.
CPython's full collections otherwise walk those hundreds of thousands of long-lived objects
again and again while the definitions import and the run creates its own: a 41-month
`dagster asset materialize` took 0.84x the time with this (six alternating pairs). Objects
created later are collected as usual. DuckDB's must not be frozen (its bindings report frozen
instances as leaked at exit), hence the condition.
"""

import gc
import sys

if "duckdb" not in sys.modules:
    gc.freeze()
