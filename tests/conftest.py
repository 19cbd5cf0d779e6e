"""Cluster fixtures for integration and e2e tests (tests/unit never uses them).

- `kubeconfig` (session): path of a kubeconfig. `--kubeconfig`/KUBECONFIG if given, else a
  running harness cluster, else the harness's control-plane tier is started.
- `full_cluster` (session): `FullCluster` with a node, registry, `kubectl()`, `helm()`,
  `build_image()`; starts (or extends to) the harness's full tier when needed.
A cluster these fixtures started is stopped when the session ends, however it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def kubeconfig(cluster_session: ClusterSession) -> str:
    try:
        return cluster_session.kubeconfig()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def full_cluster(cluster_session: ClusterSession) -> FullCluster:
    try:
        return cluster_session.full()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
