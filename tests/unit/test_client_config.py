"""The operator's lean import of kubernetes-asyncio (engine/client_config.py): a kubeconfig
loads and a client is built without the ~1,000 generated modules, and any later user of
the library in the same process still gets all of it. Each case runs in a fresh
interpreter: the deferral only acts before anything imported kubernetes-asyncio."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LEAN_CONNECT = """
import asyncio, json, sys
from taskflow.engine import client_config
client_config.lean()
from taskflow.engine.kube import connect

async def main():
    kube = await connect(kubeconfig=sys.argv[1])  # no request is sent
    await kube.close()
    return kube.host, await kube._headers(None)

host, headers = asyncio.run(main())
loaded = [m for m in sys.modules if m.startswith("kubernetes_asyncio.")]
auth = {k.lower(): v for k, v in headers.items()}.get("authorization")
print(json.dumps({"host": host, "auth": auth, "loaded": loaded}))
"""

LATER_USERS = """
import json, sys
from taskflow.engine import client_config
client_config.lean()
client_config.load()
import kubernetes_asyncio.client.models as models
from kubernetes_asyncio import client, watch
import taskflow.api.schema
print(json.dumps([models.V1Pod.__name__, client.CoreV1Api.__name__, watch.Watch.__name__]))
"""


def _run(code: str, *args: str) -> object:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_connect_loads_the_kubeconfig_without_the_generated_modules(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t0k"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    got = _run(LEAN_CONNECT, str(kubeconfig))
    assert isinstance(got, dict)
    assert got["host"] == "https://127.0.0.1:1"
    assert got["auth"] == "Bearer t0k"
    # the loader, the configuration and the client (a few dozen), not the models and APIs
    assert len(got["loaded"]) < 40, got["loaded"]
    assert not [m for m in got["loaded"] if m.startswith("kubernetes_asyncio.client.models.")]


def test_later_users_get_the_whole_library() -> None:
    assert _run(LATER_USERS) == ["V1Pod", "CoreV1Api", "Watch"]
