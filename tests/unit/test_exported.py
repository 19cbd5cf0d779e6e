"""Each package with a face says what it exports in ``__all__`` (as httpx's
``test_exported_members``): every public name defined there is in it, every name in it
exists. Its ``_modules`` are private: other packages import the face, not them."""

from __future__ import annotations

import ast
import importlib
import types
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

#: The packages whose ``__init__`` is their face.
FACES = ("taskflow.api", "taskflow.oci", "taskflow.status", "taskflow.ctl", "taskflow_agent")


def public_names(module: types.ModuleType) -> set[str]:
    """Names a reader would take for the package's API: not ``_private``, not a module, not
    something merely imported from elsewhere (``Any``, ``annotations``)."""
    package = module.__name__
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and not (origin == package or origin.startswith(package + ".")):
            continue
        names.add(name)
    return names


@pytest.mark.parametrize("package", FACES)
def test_exported_members(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(getattr(module, "__all__", []))
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = sorted(n for n in exported if not hasattr(module, n))
    assert not missing, f"{package}.__all__ names what it lacks: {missing}"
    assert public_names(module) == set(exported)


def package_of(module: str) -> str:
    """``taskflow.engine.kube`` -> ``taskflow.engine``; a package is its own."""
    path = SRC.joinpath(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


def private_imports(me: str, text: str) -> list[str]:
    """What module ``me`` imports that is private to another package: ``from pkg._mod
    import x``, ``from pkg.mod import _x``. Within its own package a ``_name`` is fine."""
    here = package_of(me)
    bad = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
            continue
        for name in (a.name for a in node.names):
            path = [*node.module.split("."), name]
            for i, part in enumerate(path):
                if part.startswith("_") and not part.startswith("__"):
                    owner = package_of(".".join(path[:i]))
                    if here != owner and not here.startswith(owner + "."):
                        bad.append(".".join(path[: i + 1]))
                    break
    return bad


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


SOURCES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_name_crosses_a_package(path: Path) -> None:
    bad = private_imports(module_of(path), path.read_text())
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_privacy_check_sees_a_crossing() -> None:
    text = (
        "from taskflow.oci._manifest import ImageManifest\n"
        "from taskflow.engine.kube import _default_kubeconfig, Kube\n"
        "from taskflow.status import _steps\n"
    )
    assert private_imports("taskflow.ctl._client", text) == [
        "taskflow.oci._manifest",
        "taskflow.engine.kube._default_kubeconfig",
        "taskflow.status._steps",
    ]
    assert private_imports("taskflow.oci", text) == [
        "taskflow.engine.kube._default_kubeconfig",
        "taskflow.status._steps",
    ]
    assert private_imports("taskflow.engine.registry", text) == [
        "taskflow.oci._manifest",
        "taskflow.status._steps",
    ]
