"""`make services`: the deployment's topology on one machine, to try it out.

Teams that run Dagster run it as services sharing one instance in PostgreSQL: a code server per
code location (gRPC), a webserver, exactly one daemon. This starts the same, each a process of
its own, around the instance `DAGSTER_POSTGRES_URL` names (required: a clear line without it):

- the project's code server: `dagster api grpc -m pipeline.defs.definitions` on `--code-port`,
  the one process that reads the tokens and `WAREHOUSE_PATH` (runs the daemon launches are
  started by it, so they run on its host with its environment);
- the webserver (`dagster-webserver`) on `--port`, and the daemon (`dagster-daemon run`),
  both reading a workspace that lists the code server as a `grpc_server` entry (written to
  `data/dagster/services/workspace.yaml`; `--also FILE` appends the `load_from` entries of
  another workspace file, another project's code servers), without the tokens.

The instance's tables are made first, by this process, so the three do not race to make them.
Ctrl-C or SIGTERM stops all of them; so does any one of them exiting. Exit code 0 after a stop
asked for, 1 when a service ended by itself, 2 without a URL.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import yaml

from pipeline.cli.doctor.instance import opened, server_of, unreachable
from pipeline.cli.supervise import database_errors
from pipeline.dagster_storage import POSTGRES_URL_ENV, postgres_url_as_set

LOCATION = "do_billing"
MODULE = "pipeline.defs.definitions"
# The settings only the code server needs: the webserver and the daemon never load the code.
CODE_SERVER_ONLY = ("DIGITALOCEAN_",)
START_SECONDS = 120
STOP_SECONDS = 20

NO_URL = (
    f"error: make services needs {POSTGRES_URL_ENV}, the instance the services share: "
    f"{POSTGRES_URL_ENV}=postgresql://user:password@host:5432/database make services. "
    "For the UI on one machine with the instance in SQLite, `make dev`."
)


class Stop(Exception):  # noqa: N818 (not an error: a request to stop)
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise Stop(signum)


def workspace(path: Path, host: str, code_port: int, also: Path | None) -> Path:
    """The webserver's and the daemon's workspace: the project's code server, then `also`'s."""
    entries: list[object] = [
        {"grpc_server": {"host": host, "port": code_port, "location_name": LOCATION}}
    ]
    if also is not None:
        other = yaml.safe_load(also.read_text())
        if not isinstance(other, dict) or not isinstance(other.get("load_from"), list):
            raise ValueError("it has no load_from list")
        entries += other["load_from"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"load_from": entries}, sort_keys=False))
    return path


def commands(
    bin_dir: Path, host: str, port: int, code_port: int, workspace_file: Path
) -> dict[str, list[str]]:
    """Each service's command line, by the name it is said by."""
    ws = ["-w", str(workspace_file)]
    return {
        "code server": [str(bin_dir / "dagster"), "api", "grpc", "-m", MODULE]
        + ["-h", host, "-p", str(code_port), "--location-name", LOCATION],
        "webserver": [str(bin_dir / "dagster-webserver"), "-h", host, "-p", str(port), *ws],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", *ws],
    }


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM to every service's process group, then SIGKILL to what is left after a while."""
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # A session of its own: Ctrl-C reaches this process only, which stops them in order.
    return subprocess.Popen(command, env=env, start_new_session=True)


def _wait_for_code_server(proc: subprocess.Popen, host: str, port: int) -> bool:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        if _listening(host, port):
            return True
        time.sleep(0.3)
    return False


def serve(home: Path, url: str, args: argparse.Namespace) -> int:
    try:
        with opened(home, url):  # the instance's tables, made once here
            pass
    except database_errors() as exc:
        print(f"error: {unreachable(url, exc)}", file=sys.stderr)
        return 1
    try:
        ws = workspace(
            home / "data" / "dagster" / "services" / "workspace.yaml",
            args.host,
            args.code_port,
            args.also,
        )
    except (OSError, yaml.YAMLError, ValueError) as exc:  # no file, bad YAML, no load_from
        print(f"error: --also {args.also} is not a workspace.yaml with load_from: {exc}")
        return 2
    lines = commands(Path(sys.executable).parent, args.host, args.port, args.code_port, ws)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    without_tokens = {k: v for k, v in env.items() if not k.startswith(CODE_SERVER_ONLY)}
    procs: dict[str, subprocess.Popen] = {}
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    try:
        procs["code server"] = _start(lines["code server"], env)
        if not _wait_for_code_server(procs["code server"], args.host, args.code_port):
            print(f"error: the code server did not start on port {args.code_port}", flush=True)
            return 1
        for name in ("webserver", "daemon"):
            procs[name] = _start(lines[name], without_tokens)
        print(
            f"services: instance in PostgreSQL at {server_of(url)}; code server "
            f"{args.host}:{args.code_port} (pid {procs['code server'].pid}); webserver "
            f"http://{args.host}:{args.port} (pid {procs['webserver'].pid}); daemon (pid "
            f"{procs['daemon'].pid}); workspace {ws}. Ctrl-C stops all.",
            flush=True,
        )
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"services: the {name} exited ({proc.returncode}); stopping the rest")
                    return 1
            time.sleep(0.5)
    except Stop as stop:
        print(f"services: {stop}, stopping all", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(procs)
        print("services: stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make services", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="where the services listen")
    parser.add_argument("--port", type=int, default=3000, help="the webserver's port")
    parser.add_argument("--code-port", type=int, default=4266, help="the code server's port")
    parser.add_argument("--also", type=Path, help="a workspace.yaml whose entries are added")
    args = parser.parse_args(argv)
    url = postgres_url_as_set()
    if url is None:
        print(NO_URL, file=sys.stderr)
        return 2
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd()).resolve()
    return serve(home, url, args)


if __name__ == "__main__":
    sys.exit(main())
