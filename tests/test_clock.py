"""tests/clock/on-day, the project's way to run the suite on another day (`make test-any-day`):
it must move the wall clock of the command and its children, for Python and DuckDB alike, and
leave monotonic time and sleeps real, or a shifted run would prove nothing."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ON_DAY = Path(__file__).parent / "clock" / "on-day"
# Prints what a process on the shifted clock sees, and what a child of it sees.
PROBE = """
import datetime, json, subprocess, sys, time
import duckdb
start = time.monotonic()
time.sleep(0.3)
child = subprocess.run([sys.executable, "-c", "import datetime; print(datetime.date.today())"],
                       capture_output=True, text=True, check=True).stdout.strip()
print(json.dumps({
    "now": datetime.datetime.now(datetime.UTC).isoformat(),
    "duckdb": str(duckdb.connect().execute("SELECT current_date").fetchone()[0]),
    "slept": time.monotonic() - start,
    "child": child,
}))
"""

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="on-day builds with gcc")


def on_day(moment: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ON_DAY), moment, *command], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("moment", "day"),
    [("2027-03-01 00:20:00", "2027-03-01"), ("2028-02-29 13:00:00", "2028-02-29")],
)
def test_on_day_moves_the_wall_clock_of_python_duckdb_and_children(moment, day):
    done = on_day(moment, sys.executable, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["now"].startswith(f"{day}T{moment[11:16]}")  # begins at the moment, runs on
    assert seen["duckdb"] == day and seen["child"] == day
    assert 0.29 <= seen["slept"] < 5  # monotonic time and sleeps stay real


def test_on_day_says_what_is_wrong_with_a_bad_moment():
    done = on_day("the first of March", "true")
    assert done.returncode == 2
    assert done.stderr.strip() == "on-day: not a moment: the first of March"
