"""Every check group in order, the lines printed, and the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pipeline.cli.doctor.check import Check
from pipeline.cli.doctor.configuration import read_settings
from pipeline.cli.doctor.instance import check_dagster
from pipeline.cli.doctor.tokens import check_token
from pipeline.cli.doctor.warehouse import check_publication, check_warehouse
from pipeline.settings import Settings


def run_checks() -> tuple[list[Check], Settings | None]:
    """Every check in order, and the settings they read (None when they do not validate);
    the checks that need valid settings wait for them."""
    configuration, settings = read_settings()
    checks = [configuration]
    if settings is not None:
        checks += check_token(settings)
        checks.append(
            check_warehouse(settings.warehouse, settings.warehouse_env, settings.sample_data)
        )
        checks.append(check_publication(settings.warehouse))
    else:
        for name in ("API, billing:read", "warehouse"):
            checks.append(Check(name, None, "not checked: fix the configuration first"))
    checks.append(check_dagster())
    return checks, settings


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
    checks, settings = run_checks()
    tokens = settings.tokens if settings is not None else []
    secrets = [token.get_secret_value() for token in tokens]
    print(report(checks, secrets))
    return 0 if all(check.ok is not False for check in checks) else 1
