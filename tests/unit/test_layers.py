"""The layering of docs/design.md: ``api -> render | status -> reconcile -> engine``, checked
on the source (no upward import, and render and status do not import each other), and the
pure layers' promise: no I/O library imported, no file or stdin touched."""

from __future__ import annotations

import ast
import sys
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
    "inputs": 3,  # the commands' -f FILE|- reader (I/O shell)
    "cli": 4,
    "ctl": 4,  # the kubectl plugin (it reads Tasks through engine.kube)
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


# -- the pure layers do no I/O --------------------------------------------------------------

#: The units docs/design.md calls pure: plain functions over msgspec structs.
PURE = ("api", "oci", "render", "status", "reconcile", "naming", "labels", "settings")

#: Libraries that talk to the network, processes or an event loop.
IO_LIBRARIES = ("aiohttp", "anyio", "asyncio", "kubernetes_asyncio", "socket", "subprocess")

#: Imports of an I/O library that are plain data: api/schema.py reads the generated models'
#: ``openapi_types``/``attribute_map`` to expand k8s types in the CRD (no client, no config).
DATA_ONLY = ("kubernetes_asyncio.client.models",)

#: ``x.attr(...)`` that reads or writes a file (pathlib, os, io).
FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "fdopen"}


def io_imports(tree: ast.AST) -> set[str]:
    """The I/O libraries ``tree`` imports (absolute imports; DATA_ONLY modules excepted)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {
        n
        for n in names
        if n.split(".")[0] in IO_LIBRARIES
        and not any(n == d or n.startswith(d + ".") for d in DATA_ONLY)
    }


def io_uses(tree: ast.AST) -> list[str]:
    """Where ``tree`` opens a file or touches the process's standard streams."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "open":
                found.append((node.lineno, f"open() at line {node.lineno}"))
            elif isinstance(f, ast.Attribute) and f.attr in FILE_METHODS:
                found.append((node.lineno, f".{f.attr}() at line {node.lineno}"))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
            and node.attr in {"stdin", "stdout", "stderr"}
        ):
            found.append((node.lineno, f"sys.{node.attr} at line {node.lineno}"))
    return [text for _, text in sorted(found)]


PURE_SOURCES = [p for p in SOURCES if own_unit(p) in PURE]


def test_every_pure_unit_has_sources() -> None:
    assert {own_unit(p) for p in PURE_SOURCES} == set(PURE)


@pytest.mark.parametrize("path", PURE_SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_pure_layers_do_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert not io_imports(tree), f"{path.relative_to(SRC)} imports {sorted(io_imports(tree))}"
    assert not io_uses(tree), f"{path.relative_to(SRC)}: {io_uses(tree)}"


def test_the_io_check_sees_a_module_that_does_io() -> None:
    bad = ast.parse(
        "import asyncio, socket\n"
        "import kubernetes_asyncio.config\n"
        "import kubernetes_asyncio.client.models\n"
        "from anyio import to_thread\n"
        "from subprocess import run\n"
        "import sys, os\n"
        "from pathlib import Path\n"
        "def f():\n"
        "    open('x')\n"
        "    Path('y').read_text()\n"
        "    os.open('z', 0)\n"
        "    return sys.stdin.read()\n"
    )
    assert io_imports(bad) == {
        "asyncio",
        "socket",
        "kubernetes_asyncio.config",
        "anyio",
        "subprocess",
    }
    assert io_uses(bad) == [
        "open() at line 9",
        ".read_text() at line 10",
        ".open() at line 11",
        "sys.stdin at line 12",
    ]
    assert not io_uses(ast.parse("class S:\n    stdin: bool = False\n"))


# -- the agent stands alone -----------------------------------------------------------------

AGENT = SRC.parent / "taskflow_agent"
#: Built into the static executable by taskflow_agent.build (its C part), not installed.
AGENT_NATIVE = {"_taskflow_native"}


def top_level_imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted(AGENT.rglob("*.py")), ids=lambda p: p.name)
def test_the_agent_imports_only_the_stdlib_and_itself(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | {"taskflow_agent"} | AGENT_NATIVE
    bad = top_level_imports(ast.parse(path.read_text())) - allowed
    assert not bad, f"{path.relative_to(AGENT.parent)} imports {sorted(bad)}"


def test_the_agent_check_sees_a_taskflow_import() -> None:
    tree = ast.parse("import os\nfrom taskflow.api import Task\nimport yaml\n")
    assert top_level_imports(tree) - set(sys.stdlib_module_names) == {"taskflow", "yaml"}
