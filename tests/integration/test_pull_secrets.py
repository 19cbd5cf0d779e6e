"""Which pull credentials an image lookup uses (engine/images.py), read from a real API
server: the Task's ``imagePullSecrets``, else its service account's; end to end against a
``docker-registry`` with htpasswd auth."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from taskflow.engine.images import ImageResolver
from taskflow.engine.kube import Kube
from taskflow.engine.registry import RegistryClient, RegistryConfig
from taskflow.oci import Credential, ImageCommand, Resolved
from tests.integration.kube_sim import enc
from tests.oci_registry import LocalRegistry, local_registry
from tests.unit.builders import step, task

pytestmark = pytest.mark.integration

USER = ("puller", "pull-pass")


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with local_registry(tmp_path_factory.mktemp("locked"), auth=USER) as reg:
        reg.push.image("private/app", "v1", entrypoint=["/secret"], cmd=["run"])
        yield reg


@pytest_asyncio.fixture
async def resolver(admin: Kube) -> AsyncIterator[ImageResolver]:
    client = RegistryClient(RegistryConfig(attempts=1))
    try:
        yield ImageResolver(admin, client)
    finally:
        await client.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _secret(admin: Kube, ns: str, name: str, host: str, user: str, pw: str) -> None:
    cfg = {"auths": {host: {"auth": _b64(f"{user}:{pw}".encode())}}}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": _b64(json.dumps(cfg).encode())},
    }
    await admin.request("POST", f"/api/v1/namespaces/{ns}/secrets", body=enc.encode(body))


async def _account(admin: Kube, ns: str, name: str, secrets: list[str]) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name},
        "imagePullSecrets": [{"name": s} for s in secrets],
    }
    await admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", body=enc.encode(body))


def _task(ns: str, image: str, **template: Any) -> Any:
    return task(step("s", image), namespace=ns, podTemplate=template)


WANT = Resolved(platforms={"linux/amd64": ImageCommand(("/secret",), ("run",))})


async def test_the_tasks_own_pull_secrets(
    admin: Kube, ns: str, locked: LocalRegistry, resolver: ImageResolver
) -> None:
    image = f"{locked.host}/private/app:v1"
    await _secret(admin, ns, "good", locked.host, *USER)
    await _secret(admin, ns, "other-host", "elsewhere.io", *USER)
    t = _task(ns, image, imagePullSecrets=[{"name": "missing"}, {"name": "good"}])
    assert await resolver.secret_names(t) == ["missing", "good"]
    assert await resolver.keyring(t) == [(locked.host, Credential(*USER))]  # missing: skipped
    assert await resolver.resolve(t, [image]) == {image: WANT}
    wrong_host = _task(ns, image, imagePullSecrets=[{"name": "other-host"}])
    answer = (await resolver.resolve(wrong_host, [image]))[image]
    assert answer.error is not None
    assert "401 Unauthorized" in answer.error


async def test_the_service_accounts_pull_secrets(
    admin: Kube, ns: str, locked: LocalRegistry, resolver: ImageResolver
) -> None:
    image = f"{locked.host}/private/app:v1"
    await _secret(admin, ns, "good", locked.host, *USER)
    await _secret(admin, ns, "bad", locked.host, USER[0], "nope")
    await _account(admin, ns, "builder", ["good"])
    by_account = _task(ns, image, serviceAccountName="builder")
    assert await resolver.resolve(by_account, [image]) == {image: WANT}
    # the Task's own secrets win: the account's are not added (ServiceAccount admission)
    own = _task(ns, image, serviceAccountName="builder", imagePullSecrets=[{"name": "bad"}])
    assert await resolver.secret_names(own) == ["bad"]
    assert (await resolver.resolve(own, [image]))[image].error is not None
    # no serviceAccountName: the namespace's "default" account, which has none here
    plain = _task(ns, image)
    assert await resolver.secret_names(plain) == []
    # an account that does not exist: no credentials, no error
    ghost = _task(ns, image, serviceAccountName="ghost")
    assert await resolver.secret_names(ghost) == []
