"""Cluster fixtures for integration and e2e tests (tests/unit never uses them).

- `kubeconfig` (session): path of a kubeconfig. `--kubeconfig`/KUBECONFIG if given, else a
  running harness cluster, else the harness's control-plane tier is started.
- `full_cluster` (session): `FullCluster` with a node, registry, `kubectl()`, `helm()`,
  `build_image()`; starts (or extends to) the harness's full tier when needed.
A cluster these fixtures started is stopped when the session ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import cast

import pytest

from tests.cluster.errors import HarnessError
from tests.cluster.fixtures import ClusterSession, FullCluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG") or None,
        help="use this existing cluster instead of starting the local harness "
        "(default: $KUBECONFIG)",
    )


@pytest.fixture(scope="session")
def cluster_session(request: pytest.FixtureRequest) -> Iterator[ClusterSession]:
    explicit = request.config.getoption("--kubeconfig")
    if explicit and not Path(explicit).is_file():
        raise pytest.UsageError(f"--kubeconfig/KUBECONFIG {explicit!r} does not exist")
    session = ClusterSession(explicit)
    try:
        yield session
    finally:
        session.close()


def _uncaptured(request: pytest.FixtureRequest) -> AbstractContextManager[object]:
    """Let a cold build's progress reach the terminal instead of pytest's capture."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        return contextlib.nullcontext()
    return cast(AbstractContextManager[object], capman.global_and_fixture_disabled())


@pytest.fixture(scope="session")
def kubeconfig(cluster_session: ClusterSession, request: pytest.FixtureRequest) -> str:
    try:
        with _uncaptured(request):
            return cluster_session.kubeconfig()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def full_cluster(cluster_session: ClusterSession, request: pytest.FixtureRequest) -> FullCluster:
    try:
        with _uncaptured(request):
            return cluster_session.full()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
