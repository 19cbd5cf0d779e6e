"""Developer sessions. `nox` alone runs every test: lint + types, unit, integration, e2e."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "unit", "integration", "e2e"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


def _install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict."""
    _install(session)
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py")
    session.run("mypy")


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Pure tests: no cluster, no network."""
    _install(session)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Against a real kube-apiserver (the control-plane tier, or $KUBECONFIG)."""
    _install(session)
    session.run("pytest", "tests/integration", *session.posargs)


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Images, Helm chart and the seed's examples on a full node (or $KUBECONFIG).

    Needs root, buildah and mmdebstrap (Debian packages) to build the operator image.
    """
    _install(session)
    session.run("pytest", "tests/e2e", "--durations=10", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on the local cluster: full cluster up, operator image, `helm install`,
    the seed's example-taskflow, `kubectl get tasks`. Tear down: `nox -s cluster -- down`."""
    _install(session)
    session.run("python", "-m", "tests.cluster", "up", "--tier", "full")
    session.run("python", "-m", "tests.e2e.deploy", *session.posargs)


@nox.session(python=PYTHON)
def crd(session: nox.Session) -> None:
    """Regenerate charts/taskflow/crds/ from `taskflow crd` (tests/unit/test_chart.py checks)."""
    _install(session)
    session.run("python", "-m", "tests.e2e.chart", "write-crd")


@nox.session(python=PYTHON)
def cluster(session: nox.Session) -> None:
    """The local cluster: `nox -s cluster -- up [--tier control-plane|full]`, `down`, `status`."""
    _install(session)
    session.run("python", "-m", "tests.cluster", *(session.posargs or ["status"]))
