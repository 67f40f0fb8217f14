"""The daily refresh of many teams as one whole process, against a sandbox serving that many.

`python -m bench.teams 10 100` (and `make bench-teams TEAMS="10 100 1000"`): for each count, a
sandbox process serves that many teams (`python -m pipeline.sandbox --teams N --profile
recent`, one token each), then `dagster asset materialize` runs every source of the open month
with all N tokens in DIGITALOCEAN_TOKENS. Measured: wall seconds, the peak of the summed
resident memory and of the summed threads of the run's process tree (sampled every 0.1 s), its
lines of output; then every team's open month is checked against the sandbox's own data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from pipeline.sandbox import build_teams
from pipeline.sandbox.data import team_token

HERE = Path(__file__).parent


def _tree(pid: int) -> list[int]:
    """The process and its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return found


def _sample(pid: int) -> tuple[int, int]:
    """(resident KiB, threads) summed over the process tree."""
    rss = threads = 0
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields.get("VmRSS", "0 kB").split()[0])
        threads += int(fields.get("Threads", "0"))
    return rss, threads


def _sandbox(teams: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sandbox", "--teams", str(teams), "--profile", "recent"]
        + ["--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = first.split(" at ", 1)[1].split()[0]
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the token lines
    return proc, url


def refresh(teams: int) -> dict:
    """One daily refresh of `teams` teams, measured and checked."""
    month = datetime.now(UTC).strftime("%Y-%m")
    work = Path(tempfile.mkdtemp(prefix=f"bench-teams-{teams}-"))
    (work / "dagster.yaml").write_text((HERE.parent / "dagster.yaml").read_text())
    warehouse = work / "warehouse.duckdb"
    server, url = _sandbox(teams)
    try:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(work),
            "WAREHOUSE_PATH": str(warehouse),
            "DIGITALOCEAN_TOKENS": ",".join(team_token(n) for n in range(1, teams + 1)),
            "DIGITALOCEAN_API_URL": url,
            "PYTHONPATH": str(HERE.parent),
        }
        command = [
            str(Path(sys.executable).with_name("dagster")),
            *("asset", "materialize", "-m", "pipeline.defs.definitions", "--select", "*"),
            *("--partition", month),
        ]
        start = time.perf_counter()
        run = subprocess.Popen(
            command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        peak_rss = peak_threads = 0
        output: list[bytes] = []
        reader = threading.Thread(target=lambda: output.extend(run.stdout or []), daemon=True)
        reader.start()
        while run.poll() is None:
            rss, threads = _sample(run.pid)
            peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
            time.sleep(0.1)
        wall = time.perf_counter() - start
        reader.join()
    finally:
        server.terminate()
        server.wait()
    expected = build_teams(teams, "recent")
    exact = wrong = 0
    with duckdb.connect(str(work / "warehouse.working.duckdb"), read_only=True) as con:
        found = dict(
            (team, (count, total))
            for team, count, total in con.execute(
                "SELECT team_uuid, count(*), sum(amount) FROM invoice_items "
                "WHERE invoice_period = ? GROUP BY 1",
                [month],
            ).fetchall()
        )
    for data in expected.values():
        items = data.items[data.preview["invoice_uuid"]]
        want = (len(items), sum(Decimal(i["amount"]) for i in items))
        if found.get(data.team["uuid"]) == want:
            exact += 1
        else:
            wrong += 1
    return {
        "teams": teams,
        "ok": run.returncode == 0,
        "wall": wall,
        "peak_mib": peak_rss / 1024,
        "threads": peak_threads,
        "lines": len(output),
        "exact": exact,
        "wrong": wrong,
    }


def row(r: dict) -> str:
    return (
        f"| {r['teams']:,} | {r['wall']:.0f} | {r['peak_mib']:.0f} | {r['threads']} | "
        f"{r['lines']} | {r['exact']:,}/{r['teams']:,} | {'yes' if r['ok'] else 'FAILED'} |"
    )


HEADER = (
    "| teams | wall s | peak MiB (all processes) | peak threads | output lines | "
    "teams exact | run succeeded |\n|---:|---:|---:|---:|---:|---:|---|"
)


def main() -> int:
    counts = [int(n) for n in sys.argv[1:]] or [10, 100]
    results = [refresh(n) for n in counts]
    print(HEADER)
    for r in results:
        print(row(r))
    print(json.dumps(results))
    return 0 if all(r["ok"] and not r["wrong"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
