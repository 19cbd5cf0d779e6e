"""Import kubernetes-asyncio's kubeconfig loader without its ~1,000 generated modules.

The operator uses kubernetes-asyncio only for ``config`` (kubeconfig/in-cluster loading,
token refresh) and ``client.Configuration``/``client.ApiClient`` (TLS, auth headers, the
aiohttp session); requests and decoding are its own (:mod:`taskflow.engine.kube`). But
``import kubernetes_asyncio.config`` runs the package ``__init__``s, which import every
API class and every OpenAPI model: ~36 MB of resident memory (30 % of the operator's
budget at 10k Tasks, ``docs/benchmarks.md``) for code it never calls.

:func:`load` puts the three package modules (``kubernetes_asyncio``, ``.client``,
``.client.models``) into ``sys.modules`` as *deferred packages*: module objects with the
real ``__path__`` whose ``__init__`` has not run. Submodule imports (``.config``,
``.client.configuration``, ``.client.api_client``) work as usual; the first lookup of a
name such a package does not have yet runs its real ``__init__`` into it, so any other
caller in the same process (``taskflow.api.schema``'s models, ``ApiClient.deserialize``)
still gets the whole package, only later.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

ROOT = "kubernetes_asyncio"
# Outermost first: each one's parent must be in sys.modules before it.
DEFERRED = (ROOT, f"{ROOT}.client", f"{ROOT}.client.models")
# Submodules the loader imports (any other name first runs the package's real __init__,
# which imports the rest in the library's own order).
LEAN = frozenset({"config", "client", "models", "configuration", "api_client", "rest"})


class _DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs at the first attribute lookup that misses."""

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        if name in LEAN and f"{self.__name__}.{name}" not in sys.modules:
            # `from package import submodule` asks before it imports: no reason to run
            # the whole __init__ for what the loader needs.
            return importlib.import_module(f"{self.__name__}.{name}")
        if not state.get("_taskflow_init_ran"):
            state["_taskflow_init_ran"] = True
            init = Path(state["__file__"])
            exec(compile(init.read_bytes(), init, "exec"), state)  # the real __init__
            if name in state:
                return state[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


def _defer(name: str, location: Path) -> None:
    module = _DeferredPackage(name)
    module.__file__ = str(location / "__init__.py")
    module.__path__ = [str(location)]
    module.__package__ = name
    module.__spec__ = importlib.util.spec_from_file_location(
        name, module.__file__, submodule_search_locations=module.__path__
    )
    module.__loader__ = module.__spec__.loader if module.__spec__ else None
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


def lean() -> None:
    """Defer the three packages and import only the loader, once per process, before
    anything else imported kubernetes-asyncio (else: nothing to save, nothing done).

    For the operator's own process (``taskflow run``): a later plain ``import
    kubernetes_asyncio.<subpackage>`` that the real ``__init__`` would have imported first
    may see another import order than usual; the operator makes none.
    """
    if ROOT in sys.modules:
        return
    spec = importlib.util.find_spec(ROOT)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"no module named {ROOT!r}", name=ROOT)
    base = Path(next(iter(spec.submodule_search_locations)))
    for name in DEFERRED:
        _defer(name, base.joinpath(*name.split(".")[1:]))
    client: Any = sys.modules[f"{ROOT}.client"]
    # kube_config does `from kubernetes_asyncio.client import ApiClient, Configuration`:
    # set them first so that lookup does not miss (and run the whole __init__).
    client.Configuration = importlib.import_module(f"{ROOT}.client.configuration").Configuration
    client.ApiClient = importlib.import_module(f"{ROOT}.client.api_client").ApiClient
    importlib.import_module(f"{ROOT}.config")


def load() -> tuple[Any, Any, Any]:
    """``(kubernetes_asyncio.config, Configuration, ApiClient)``: after :func:`lean`
    without the rest of the library, else the usual way."""
    from kubernetes_asyncio import config
    from kubernetes_asyncio.client import ApiClient, Configuration

    return config, Configuration, ApiClient
