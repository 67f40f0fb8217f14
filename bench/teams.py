"""The daily refresh of many teams as one whole process, against a sandbox serving that many.

`python -m bench.teams 10 100` (and `make bench-teams TEAMS="10 100 1000"`): for each count, a
sandbox process serves that many teams (`python -m pipeline.sandbox --teams N --profile
recent`, one token each), then `dagster asset materialize` runs every source of the open month
with all N tokens in DIGITALOCEAN_TOKENS (in the run folder's `.env`). Measured: wall seconds,
the peak of the summed resident memory and of the summed threads of the run's process tree
(sampled every 0.1 s), its lines of output; then every team's open month is checked against the
sandbox's own data.

`--revoke K` revokes K of the tokens (spread over the list) after their teams are read (the
sandbox's `--revoke`): the run must fail naming each of those teams, and every other team must
be exact. The run's output is kept in its work folder as `output.log`.
"""

from __future__ import annotations

import argparse
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
from pipeline.sandbox.teams import team_token

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


def revoked_places(teams: int, revoke: int) -> list[int]:
    """Which tokens `--revoke` revokes: `revoke` places spread evenly over the list."""
    return sorted({teams * (2 * k + 1) // (2 * revoke) + 1 for k in range(revoke)})


def _sandbox(teams: int, revoked: list[int]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sandbox", "--teams", str(teams), "--profile", "recent"]
        + ["--port", "0"]
        + [arg for place in revoked for arg in ("--revoke", str(place))],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = first.split(" at ", 1)[1].split()[0]
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain the token lines
    return proc, url


def refresh(teams: int, revoke: int = 0) -> dict:
    """One daily refresh of `teams` teams (`revoke` of their tokens revoked), measured and
    checked."""
    # The sandbox builds its accounts as of its start; the check rebuilds them as of the same
    # moment, so a run that crosses midnight (or a month's end) is checked against what it read.
    started = datetime.now(UTC)
    month = started.strftime("%Y-%m")
    work = Path(tempfile.mkdtemp(prefix=f"bench-teams-{teams}-"))
    (work / "dagster.yaml").write_text((HERE.parent / "dagster.yaml").read_text())
    warehouse = work / "warehouse.duckdb"
    revoked = revoked_places(teams, revoke) if revoke else []
    server, url = _sandbox(teams, revoked)
    try:
        # The tokens in the run folder's .env, which the settings read: 10,000 of them are more
        # than Linux lets one environment variable hold (128 KiB).
        tokens = ",".join(team_token(n) for n in range(1, teams + 1))
        (work / ".env").write_text(f"DIGITALOCEAN_TOKENS={tokens}\n")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DIGITALOCEAN_")},
            "DAGSTER_HOME": str(work),
            "WAREHOUSE_PATH": str(warehouse),
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
    (work / "output.log").write_bytes(b"".join(output))
    text = b"".join(output).decode(errors="replace")
    expected = build_teams(teams, "recent", now=started)
    revoked_uuids = {list(expected.values())[place - 1].team["uuid"] for place in revoked}
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
        if data.team["uuid"] in revoked_uuids:
            continue  # checked below: named as failed, and its (empty) rows not counted
        items = data.items[data.preview["invoice_uuid"]]
        want = (len(items), sum(Decimal(i["amount"]) for i in items))
        if found.get(data.team["uuid"]) == want:
            exact += 1
        else:
            wrong += 1
    return {
        "teams": teams,
        "revoked": len(revoked),
        # Each revoked team named in the failure, and no other team failed.
        "named": all(uuid in text for uuid in revoked_uuids),
        "ok": run.returncode == 0,
        "wall": wall,
        "peak_mib": peak_rss / 1024,
        "threads": peak_threads,
        "lines": len(output),
        "exact": exact,
        "wrong": wrong,
    }


def row(r: dict) -> str:
    checked = r["teams"] - r["revoked"]
    if r["revoked"]:
        named = "named" if r["named"] else "NOT NAMED"
        verdict = f"failed, {r['revoked']} revoked team(s) {named}" if not r["ok"] else "PASSED"
    else:
        verdict = "yes" if r["ok"] else "FAILED"
    return (
        f"| {r['teams']:,} | {r['wall']:.0f} | {r['peak_mib']:.0f} | {r['threads']} | "
        f"{r['lines']} | {r['exact']:,}/{checked:,} | {verdict} |"
    )


def good(r: dict) -> bool:
    """Every checked team exact; the run succeeded, or, with revoked tokens, failed naming
    each revoked team."""
    if r["wrong"]:
        return False
    return (not r["ok"] and r["named"]) if r["revoked"] else r["ok"]


HEADER = (
    "| teams | wall s | peak MiB (all processes) | peak threads | output lines | "
    "teams exact (not revoked) | run succeeded |\n|---:|---:|---:|---:|---:|---:|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description="The daily refresh of many teams, measured.")
    parser.add_argument("counts", nargs="*", type=int, default=[10, 100])
    parser.add_argument("--revoke", type=int, default=0, help="tokens to revoke (default 0)")
    args = parser.parse_args()
    results = [refresh(n, args.revoke) for n in args.counts]
    print(HEADER)
    for r in results:
        print(row(r))
    print(json.dumps(results))
    return 0 if all(good(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
