"""The layers of docs/architecture.md, read from the code's own imports: what may import what.

The table below is the one in docs/architecture.md ("What may import what"); a test reads that table too, so the
document and this check cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_fbmkto"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

#: Third-party roots no module of the layer may import (the layer's promise, beyond our own packages).
FORBIDDEN_EXTERNAL = {
    "sync": ("airflow", "requests", "httpx", "sqlalchemy", "fastapi", "starlette", "pendulum"),
    "pipeline": ("airflow", "requests", "httpx", "fastapi", "starlette"),
    "http": ("airflow", "sqlalchemy"),
    "testing": ("airflow",),
}


def allowed_imports() -> dict[str, set[str]]:
    """The "What may import what" table of docs/architecture.md: ``| `layer` | `a`, `b` | why |`` rows."""
    table = ARCHITECTURE.read_text().split("## What may import what", 1)[1].split("\n## ", 1)[0]
    allowed: dict[str, set[str]] = {}
    for row in re.finditer(r"^\| `([a-z_]+)` \|([^|]*)\|", table, flags=re.MULTILINE):
        allowed[row.group(1)] = set(re.findall(r"`([a-z_]+)`", row.group(2)))
    return allowed


def layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0].removesuffix(".py")


def imports_by_layer() -> tuple[dict[str, dict[str, set[str]]], dict[str, dict[str, set[str]]]]:
    """``{layer: {imported layer: {file, ...}}}`` for our packages and for third-party roots."""
    ours: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    external: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in PACKAGE.rglob("*.py"):
        layer, name = layer_of(path), str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text(), filename=name)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if parts[0] == "airflow_provider_fbmkto":
                    target = parts[1] if len(parts) > 1 else "__init__"
                    if target != layer:
                        ours[layer][target].add(name)
                else:
                    external[layer][parts[0]].add(name)
    return ours, external


def test_the_architecture_table_names_every_layer_of_the_package() -> None:
    layers = {layer_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    assert set(allowed_imports()) == layers


def test_each_layer_imports_only_what_the_architecture_allows() -> None:
    allowed = allowed_imports()
    ours, _ = imports_by_layer()
    breaches = {
        f"{layer} -> {target}": sorted(files)
        for layer, targets in ours.items()
        if layer in allowed
        for target, files in targets.items()
        if target not in allowed[layer] | {"__init__"}
    }
    assert breaches == {}, "update the code, or docs/architecture.md if the layering really changed"


def test_the_pure_layers_import_no_framework() -> None:
    _, external = imports_by_layer()
    breaches = {
        f"{layer} imports {root}": sorted(external[layer][root])
        for layer, roots in FORBIDDEN_EXTERNAL.items()
        for root in roots
        if root in external[layer]
    }
    assert breaches == {}


def test_only_the_cli_and_the_demo_import_the_emulators() -> None:
    ours, _ = imports_by_layer()
    assert {layer for layer, targets in ours.items() if "testing" in targets} <= {"cli", "demo"}
