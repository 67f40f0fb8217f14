"""The bench runs dlt's script as a dlt user does: a file, in its own directory with its own
config, in a clean environment."""

import ast
import tomllib
from pathlib import Path

import pytest

from bench import run

SCRIPT = Path(run.__file__).with_name("dlt_pipeline.py")


def test_dlt_runs_as_a_script_in_an_empty_directory_with_a_clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "/somewhere")
    monkeypatch.setenv("PYTHONPATH", str(SCRIPT.parent.parent))
    monkeypatch.delenv("DLT_PYTHON", raising=False)
    command, cwd, env = run.dlt_command("http://127.0.0.1:1", tmp_path, "parallelized")
    assert command[1] == str(SCRIPT) and "-c" not in command
    assert command[-1] == "parallelized"
    # dlt reads .dlt/ from its working directory: a new one holding only the peer's config.
    assert [p.relative_to(cwd) for p in cwd.rglob("*")] == [Path(".dlt"), Path(".dlt/config.toml")]
    config = tomllib.loads((cwd / ".dlt" / "config.toml").read_text())
    assert config["extract"]["workers"] > 5  # dlt's default for parallelized resources
    assert SCRIPT.parent.parent not in (cwd, *cwd.parents)
    assert "DAGSTER_HOME" not in env and "PYTHONPATH" not in env
    assert env["PATH"]


def test_dlt_python_is_the_one_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DLT_PYTHON", "/opt/dlt-only/bin/python")
    command, _, _ = run.dlt_command("http://127.0.0.1:1", tmp_path, "sequential")
    assert command[0] == "/opt/dlt-only/bin/python"


def test_the_dlt_script_imports_nothing_from_this_repository() -> None:
    tree = ast.parse(SCRIPT.read_text())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules == {"sys", "dlt"}


def test_the_dlt_script_pages_items_with_json_link_and_is_parallelized() -> None:
    from bench.dlt_pipeline import billing_config

    config = billing_config("http://127.0.0.1:1", "t", parallelized=True)
    assert config["resource_defaults"] == {"parallelized": True}
    (items,) = [r for r in config["resources"] if r["name"] == "invoice_items"]
    # Without its own paginator dlt forces one page per invoice: 20 items each.
    assert items["endpoint"]["paginator"] == {
        "type": "json_link",
        "next_url_path": "links.pages.next",
    }
    assert [r["name"] for r in config["resources"]] == ["invoices", "invoice_items"]
    assert items["include_from_parent"] == ["invoice_period"]
    assert billing_config("u", "t", parallelized=False)["resource_defaults"] == {
        "parallelized": False
    }
