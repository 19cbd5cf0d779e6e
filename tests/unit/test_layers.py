"""The layering of docs/design.md: ``api -> render | status -> reconcile -> engine``, checked
on the source (no upward import, and render and status do not import each other)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "taskflow"

#: top-level unit of src/taskflow -> layer; a unit imports only from lower layers (or itself)
LAYER = {
    "taskflow": 0,  # the package root: __version__
    "api": 0,
    "labels": 0,
    "settings": 0,
    "naming": 0,
    "metrics": 0,
    "logs": 0,
    "oci": 0,  # a leaf: imports nothing of taskflow
    "render": 1,
    "status": 1,
    "reconcile": 2,
    "server": 2,
    "engine": 3,
    "cli": 4,
    "ctl": 4,  # the kubectl plugin (on main; it reads Tasks through engine.kube)
    "__main__": 5,
}


def unit_of(module: str) -> str:
    """``taskflow.status._compute`` -> ``status``; ``taskflow`` -> ``taskflow``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "taskflow":  # from taskflow import render, reconcile
                found.update(f"taskflow.{a.name}" for a in node.names if a.name in LAYER)
                if any(a.name not in LAYER for a in node.names):
                    found.add("taskflow")
            elif node.module.startswith("taskflow."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("taskflow."))
    return found


def own_unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


SOURCES = sorted(p for p in SRC.rglob("*.py") if own_unit(p) != "__init__")


def test_every_unit_has_a_layer() -> None:
    assert {own_unit(p) for p in SOURCES} <= set(LAYER)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_or_sideways_import(path: Path) -> None:
    me = own_unit(path)
    bad = sorted(m for m in imports(path) if unit_of(m) != me and LAYER[unit_of(m)] >= LAYER[me])
    assert not bad, f"{path.relative_to(SRC)} (layer {LAYER[me]}) imports {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from taskflow.render import render_pod\nimport taskflow.engine.kube\n")
    assert imports(bad) == {"taskflow.render", "taskflow.engine.kube"}
