"""Every check group in order, the lines printed, and the exit code."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence

from pipeline.cli.doctor.check import Check
from pipeline.cli.doctor.configuration import check_settings
from pipeline.cli.doctor.instance import check_dagster
from pipeline.cli.doctor.tokens import check_token
from pipeline.cli.doctor.warehouse import check_publication, check_warehouse
from pipeline.settings import SettingsError, get_settings


def run_checks() -> list[Check]:
    """Every check in order; those that need valid settings wait for them."""
    checks = [check_settings()]
    if checks[0].ok:
        settings = get_settings()
        checks += check_token(settings)
        checks.append(
            check_warehouse(settings.warehouse, settings.warehouse_env, settings.sample_data)
        )
        checks.append(check_publication(settings.warehouse))
    else:
        for name in ("API, billing:read", "warehouse"):
            checks.append(Check(name, None, "not checked: fix the configuration first"))
    checks.append(check_dagster())
    return checks


def report(checks: Sequence[Check], secrets: Sequence[str] = ()) -> str:
    """The lines a person reads, and the verdict; a token, should one appear, is masked."""
    problems = sum(1 for check in checks if check.ok is False)
    lines = [check.line() for check in checks]
    lines.append(
        "all checks passed" if not problems else f"{problems} problem(s): fix the ✗ lines above"
    )
    text = "\n".join(lines)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report; 0 when every check passed, else 1."""
    argparse.ArgumentParser(
        prog="python -m pipeline.cli.doctor",
        description="Check the settings, the token, the warehouse file and the Dagster instance.",
    ).parse_args(argv)
    checks = run_checks()
    secrets: list[str] = []
    with contextlib.suppress(SettingsError):
        secrets = [token.get_secret_value() for token in get_settings().tokens]
    print(report(checks, secrets))
    return 0 if all(check.ok is not False for check in checks) else 1
