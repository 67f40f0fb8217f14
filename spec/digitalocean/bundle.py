"""Rebuild `billing.bundled.json` from `billing.openapi.yaml` by inlining every `$ref`.

Run from the repository root: `.venv/bin/python spec/digitalocean/bundle.py` (needs PyYAML).
`--check` exits 1 if the bundle on disk differs from what this would write.

A `$ref` is `file#/json/pointer` (either part optional), relative to the file that holds it; the
object holding it is replaced by the target. YAML timestamps are kept as the original strings
(the plain loader would turn `2019-07-01` into a date, which JSON cannot hold).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE / "billing.openapi.yaml"
OUT = HERE / "billing.bundled.json"


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: dates stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_cache: dict[Path, Any] = {}


def _load(path: Path) -> Any:
    if path not in _cache:
        _cache[path] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    return _cache[path]


def _resolve(ref: str, base: Path) -> tuple[Any, Path]:
    file, _, pointer = ref.partition("#")
    path = (base.parent / file).resolve() if file else base
    node = _load(path)
    for part in filter(None, pointer.split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, path


def _inline(node: Any, base: Path, stack: tuple[str, ...] = ()) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target, path = _resolve(node["$ref"], base)
            key = f"{path}#{node['$ref'].partition('#')[2]}"
            if key in stack:
                raise ValueError(f"circular $ref {node['$ref']} in {base}")
            return _inline(target, path, (*stack, key))
        return {k: _inline(v, base, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, base, stack) for v in node]
    return node


def bundle() -> str:
    return json.dumps(_inline(_load(ROOT), ROOT), indent=1, ensure_ascii=False)


def main() -> int:
    text = bundle()
    if "--check" in sys.argv[1:]:
        same = OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.name} is {'up to date' if same else 'OUT OF DATE'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
