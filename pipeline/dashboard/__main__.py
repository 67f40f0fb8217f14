"""`make dashboard`: validate the settings, then serve the app with Streamlit on DASHBOARD_PORT.

Streamlit runs in this process (exec), headless, on loopback like `make dev`, with no usage
statistics and no file watcher: the machine may have no outside network, and the app is not
edited while it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.settings import SettingsError, load_settings

APP = Path(__file__).with_name("app.py")


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 2
    print(
        f"dashboard on http://127.0.0.1:{settings.dashboard_port} "
        f"reading {settings.warehouse} (read-only, one query at a time)"
        f"{' — sample data (built-in sandbox): no token is set' if settings.sample_data else ''}",
        flush=True,
    )
    args = [sys.executable, "-m", "streamlit", "run", str(APP)]
    args += ["--server.port", str(settings.dashboard_port), "--server.address", "127.0.0.1"]
    args += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    args += ["--server.fileWatcherType", "none", "--global.developmentMode", "false"]
    args += ["--client.toolbarMode", "viewer"]
    os.execv(sys.executable, args)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
