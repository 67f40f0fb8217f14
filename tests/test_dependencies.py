"""Every third-party module the code imports is declared in pyproject.toml.

pipeline/ may use only `dependencies`; tests/ those and the `test` extra; bench/ those and the
`bench` extra. A module that is installed only because another package depends on it works
until that package stops depending on it, so it must be declared as well.
"""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"pipeline", "tests", "bench"}
# Modules used without an import statement of ours: pandas imports tabulate in to_markdown().
USED_THROUGH = {".to_markdown(": "tabulate"}
INSTALLED = packages_distributions()


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extras: list[str]) -> set[str]:
    """The distributions pyproject.toml declares: dependencies plus the given extras."""
    requirements = [*PROJECT["dependencies"]]
    for extra in extras:
        requirements += PROJECT["optional-dependencies"][extra]
    return {normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) for r in requirements}


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Third-party top-level module → the files under `folder` that use it."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        source = path.read_text()
        names: list[str] = [module for marker, module in USED_THROUGH.items() if marker in source]
        for node in ast.walk(ast.parse(source, filename=str(path))):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.append(node.module)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "importorskip"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.append(node.args[0].value)
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions(module: str) -> set[str]:
    """The distributions that provide `module` (its own name when it is not installed)."""
    return {normalized(d) for d in INSTALLED.get(module, [module])}


@pytest.mark.parametrize(
    ("folder", "extras"), [("pipeline", []), ("tests", ["test"]), ("bench", ["bench"])]
)
def test_every_imported_module_is_declared(folder, extras):
    allowed = declared(extras)
    undeclared = {
        module: sorted(files)
        for module, files in imported_modules(folder).items()
        if not distributions(module) & allowed
    }
    assert undeclared == {}, f"imported under {folder}/ but not declared in pyproject.toml"


def test_the_scan_sees_imports_of_every_kind():
    """The check above is only as good as the scan: plain, `from`, importorskip, indirect."""
    pipeline, tests = imported_modules("pipeline"), imported_modules("tests")
    assert {"pandas", "numpy", "pyarrow", "dagster", "tabulate"} <= set(pipeline)
    assert "pipeline/defs/metadata.py" in pipeline["tabulate"]
    assert {"hypothesis", "playwright", "requests"} <= set(tests)
    assert "pipeline" not in pipeline and "json" not in tests
    assert distributions("yaml") == {"pyyaml"} and distributions("dotenv") == {"python-dotenv"}
    assert "dagster" in declared([]) and "hypothesis" not in declared([])
