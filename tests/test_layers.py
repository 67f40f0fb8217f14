"""The layering the folder tables (README, docs/architecture.md) describe, read from the
code's own imports.

Data flows one way: the API client knows only HTTP, the sources only their declarations, the
core never reaches up into the Dagster wiring or the command lines; and the project's Dagster
definitions load and validate with Dagster's own project CLI, `dg check defs`.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
CORE = ["api", "sources", "warehouse", "alerts", "sandbox", "engine", "teams", "settings", "months"]


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module the file imports, absolute, including imports inside functions."""
    found: set[str] = set()
    package = module_of(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_of(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def files(*places: str) -> list[Path]:
    paths: list[Path] = []
    for place in places:
        target = PIPELINE / place
        paths += sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    return paths


def offenders(places: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for path in files(*places):
        hits = sorted(
            name
            for name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)
        )
        if hits:
            bad[str(path.relative_to(ROOT))] = hits
    return bad


def test_sources_import_neither_dagster_nor_duckdb():
    assert offenders(["sources"], ("dagster", "duckdb")) == {}


def test_the_core_never_imports_the_wiring_or_the_command_lines():
    assert offenders(CORE, ("pipeline.defs", "pipeline.cli")) == {}


def test_the_api_client_knows_nothing_of_sources_or_the_warehouse():
    assert offenders(["api"], ("pipeline.sources", "pipeline.warehouse", "pipeline.engine")) == {}


def test_the_alert_rules_and_delivery_run_without_dagster():
    assert offenders(["alerts"], ("dagster",)) == {}


def test_no_private_dagster_import_outside_the_instance_storage():
    private = offenders(
        [p.name for p in PIPELINE.iterdir() if p.name != "dagster_storage.py"], ("dagster._",)
    )
    assert private == {}


def test_the_top_of_the_package_holds_at_most_six_modules():
    modules = sorted(p.name for p in PIPELINE.glob("*.py"))
    assert len(modules) <= 6, modules
    assert (PIPELINE / "defs").is_dir() and (PIPELINE / "cli").is_dir()


def test_the_package_imports_have_no_cycle():
    graph: dict[str, set[str]] = {}
    paths = sorted(PIPELINE.rglob("*.py"))
    known = {module_of(p) for p in paths}
    for path in paths:
        graph[module_of(path)] = {
            name for name in imports_of(path) if name in known and name != module_of(path)
        }

    def parents(name: str) -> set[str]:
        """Importing `a.b.c` runs `a/__init__` and `a/b/__init__` too."""
        parts = name.split(".")
        return {".".join(parts[:n]) for n in range(1, len(parts))} & known

    for name in graph:
        graph[name] = {*graph[name], *(p for dep in graph[name] for p in parents(dep))} - {
            name,
            *parents(name),
        }
    seen: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> None:
        seen[node] = 1
        for dep in sorted(graph[node]):
            if seen.get(dep) == 1:
                pytest.fail("import cycle: " + " → ".join([*trail, node, dep]))
            if dep not in seen:
                visit(dep, [*trail, node])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [])


def test_dg_check_defs_loads_the_definitions(tmp_path):
    dg = Path(sys.executable).parent / "dg"
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
        "DAGSTER_HOME": str(tmp_path),
        "WAREHOUSE_PATH": str(tmp_path / "w.duckdb"),
        "SANDBOX_WAREHOUSE_PATH": str(tmp_path / "sandbox.duckdb"),
    }
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = subprocess.run(
        [str(dg), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully." in done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr


def test_importing_the_pipeline_changes_no_process_wide_state():
    """Importing the definitions (as the webserver, the dashboard or a notebook does) leaves
    Arrow's memory pool and the environment as they were; a load switches the pool where it
    parses items, not on import."""
    code = (
        "import os, pyarrow as pa; before = (pa.default_memory_pool().backend_name, "
        "dict(os.environ)); import pipeline.defs.definitions, pipeline.dashboard.queries; "
        "after = (pa.default_memory_pool().backend_name, dict(os.environ)); "
        "print(before == after, before[0], after[0])"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "True", done.stdout
