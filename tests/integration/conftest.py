"""Fixtures of the integration tests (helpers: ``kube_sim.py``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import pytest
import pytest_asyncio

from taskflow.engine.kube import ApiError, Kube, connect
from tests.integration.kube_sim import enc, install_crd


@pytest_asyncio.fixture(scope="module")
async def admin(kubeconfig: str) -> AsyncIterator[Kube]:
    """The admin client of the cluster, with the Task CRD installed."""
    kube = await connect(kubeconfig=kubeconfig)
    try:
        await install_crd(kube)
        yield kube
    finally:
        await kube.close()


@pytest_asyncio.fixture
async def ns(admin: Kube, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace per test (named after the test module), deleted afterwards."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"tf-{module.replace('_', '-')[:20]}-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await admin.request("POST", "/api/v1/namespaces", body=enc.encode(body))
    yield name
    with suppress(ApiError):
        await admin.request("DELETE", f"/api/v1/namespaces/{name}")
