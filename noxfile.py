"""Developer sessions. `nox` alone runs every test: lint + types, unit, loopback, chart,
integration, e2e, chaos."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path, PurePath

import nox

nox.options.sessions = ["lint", "unit", "loopback", "chart", "integration", "e2e", "chaos"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"

#: Exact versions of every dependency (dev extras included) for CI, the image and every
#: session here: the CRD is generated from kubernetes-asyncio's model metadata, so which
#: version is installed is part of the build. `nox -s lock` regenerates it.
LOCK = "requirements.lock"
#: The lock's resolver (itself pinned: a newer uv may resolve or format differently).
UV = "uv==0.13.9"


def _install(session: nox.Session) -> None:
    session.install("-c", LOCK, "-e", ".[dev]")


def _debian_packages(session: nox.Session, *lists: str) -> None:
    """apt-get install what the listed package files name and this machine lacks (as root on
    Debian; elsewhere the harness's preflight says what is missing)."""
    wanted = [
        line.strip()
        for name in lists
        for line in Path(name).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if os.geteuid() != 0 or shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        return
    missing = [
        pkg
        for pkg in wanted
        if subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False
        ).stdout
        != "install ok installed"
    ]
    if missing:
        session.log(f"installing Debian packages: {' '.join(missing)}")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        _add_architectures(session, {pkg.partition(":")[2] for pkg in missing} - {""})
        session.run("apt-get", "update", external=True, env=env)
        session.run(
            "apt-get", "install", "-y", "--no-install-recommends", *missing, external=True, env=env
        )


def _add_architectures(session: nox.Session, wanted: set[str]) -> None:
    """Multiarch: ``pkg:arm64`` installs only once dpkg knows the architecture."""
    known = {
        *subprocess.run(
            ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
        ).stdout.split(),
        subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip(),
    }
    for arch in sorted(wanted - known):
        session.run("dpkg", "--add-architecture", arch, external=True)


NODE_PACKAGES = ("tests/cluster/apt-packages.txt", "tests/e2e/apt-packages.txt")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict."""
    _install(session)
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("mypy")


#: The unit tier's coverage floor (percent of src/taskflow and src/taskflow_agent lines, the
#: agent's executable aside: it runs as a subprocess). Raise it when coverage rises.
COVERAGE_FLOOR = 75


def _selects_tests(args: list[str]) -> bool:
    """Whether pytest arguments choose some tests (a path, ``x::y``, ``-k``, ``-m``)."""
    return any(a.startswith(("tests", "-k", "-m")) or "::" in a for a in args)


#: pytest options whose value is a path, not a test to run
_PATH_OPTIONS = frozenset({"--deselect", "--ignore", "--ignore-glob"})


def _pytest_args(tier: str, posargs: list[str]) -> list[str]:
    """The tier folder, then the session's arguments; without the folder when they name
    tests under ``tests/`` themselves: pytest would run the whole tier beside them."""
    named = any(
        PurePath(arg.partition("::")[0]).parts[:1] == ("tests",) and before not in _PATH_OPTIONS
        for before, arg in zip(["", *posargs], posargs, strict=False)
    )
    return [*posargs] if named else [tier, *posargs]


def _unit(session: nox.Session, *, floor: bool) -> None:
    _debian_packages(session, "tests/unit/agent/apt-packages.txt")
    _install(session)
    cov = ["--cov=taskflow", "--cov=taskflow_agent", "--cov-report=term:skip-covered"]
    # A chosen subset of tests covers less: the floor holds for the whole tier only.
    if floor and not _selects_tests(session.posargs):
        cov.append(f"--cov-fail-under={COVERAGE_FLOOR}")
    session.run("pytest", *(cov if floor else ()), *_pytest_args("tests/unit", session.posargs))


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Pure tests: no cluster, no network; fails under the coverage floor. The agent's tests
    build its static executable (Debian packages in tests/unit/agent/apt-packages.txt,
    installed when missing)."""
    _unit(session, floor=True)


@nox.session(name="unit-3.12", python="3.12")
def unit_312(session: nox.Session) -> None:
    """The unit tier on Python 3.12 (pyenv: `PYENV_VERSION=3.11.7:3.12.1:3.13.0 nox ...`)."""
    _unit(session, floor=False)


@nox.session(name="unit-3.13", python="3.13")
def unit_313(session: nox.Session) -> None:
    """The unit tier on Python 3.13 (the newest this project supports)."""
    _unit(session, floor=False)


@nox.session(python=PYTHON)
def loopback(session: nox.Session) -> None:
    """Against servers the tests start on 127.0.0.1, no cluster: a scripted API server that
    misbehaves (leases, 429/503, pacing), docker-registry with and without auth, a token
    server, `taskflow run` with nothing to talk to."""
    _debian_packages(session, "tests/loopback/apt-packages.txt")
    _install(session)
    session.run("pytest", *_pytest_args("tests/loopback", session.posargs))


@nox.session(python=PYTHON)
def chart(session: nox.Session) -> None:
    """The Helm chart without a cluster: its CRD is `taskflow crd`, `helm template` output
    (RBAC, Deployment, options). Builds the harness's pinned helm when it is not cached."""
    _install(session)
    session.run("pytest", *_pytest_args("tests/chart", session.posargs))


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """Against a real kube-apiserver (the control-plane tier, or $KUBECONFIG)."""
    _debian_packages(session, "tests/cluster/apt-packages.txt")
    _install(session)
    session.run("pytest", *_pytest_args("tests/integration", session.posargs))


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Images, Helm chart and the seed's examples on a full node (or $KUBECONFIG).

    Needs root, buildah and mmdebstrap (Debian packages, installed when missing).
    """
    _debian_packages(session, *NODE_PACKAGES)
    _install(session)
    session.run("pytest", "--durations=10", *_pytest_args("tests/e2e", session.posargs))


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """N Tasks in flight (default 100) while one fault at a time hits the API server, etcd,
    the operator or the network; prints lost/duplicated/wrong per scenario and fails on any.
    `-- --quick` (N=20, three scenarios), `-- --only NAME`, `-- -n N`. Uses $KUBECONFIG or
    the running harness cluster, else starts the full tier and stops it afterwards."""
    _debian_packages(session, *NODE_PACKAGES)
    _install(session)
    session.run("python", "-m", "tests.chaos", *session.posargs)


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the operator and agent images, push them to $TASKFLOW_TEST_REGISTRY (or
    `-- --registry HOST:PORT`) and print `operator=REF` and `agent=REF`. Root, buildah."""
    _debian_packages(session, *NODE_PACKAGES)
    _install(session)
    session.run("python", "-m", "tests.e2e.images", "all", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on the local cluster: full cluster up, operator image, `helm install`,
    the seed's example-taskflow, `kubectl get tasks`. Tear down: `nox -s cluster -- down`."""
    _debian_packages(session, *NODE_PACKAGES)
    _install(session)
    session.run("python", "-m", "tests.cluster", "up", "--tier", "full")
    session.run("python", "-m", "tests.e2e.deploy", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Performance against floors and ceilings (docs/benchmarks.md), not a default session:
    `nox -s bench` (full sizes, writes docs/benchmarks.md), `nox -s bench -- --quick` (tiny
    sizes, a few minutes), `-- --only scale` (one part), `-- --control-plane-kubeconfig K`
    (latency and scale on K). Uses $KUBECONFIG or the running harness cluster, else starts
    the harness's full tier and stops it afterwards."""
    _debian_packages(session, *NODE_PACKAGES)
    _install(session)
    session.run("python", "-m", "benchmarks.run", *session.posargs)


@nox.session(python=PYTHON)
def crd(session: nox.Session) -> None:
    """Regenerate the chart's generated files: crds/ from `taskflow crd`, the admission policy
    template from `taskflow policy` (tests/chart/test_chart.py checks both)."""
    _install(session)
    session.run("python", "-m", "tests.e2e.chart", "write-crd")


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Regenerate requirements.lock from pyproject.toml (dependencies + dev extras, every
    platform, Python 3.11+). Versions already in the lock are kept unless pyproject.toml no
    longer allows them; `nox -s lock -- --upgrade` moves everything to the newest allowed."""
    session.install(UV)
    session.run(
        "uv", "pip", "compile", "pyproject.toml",
        "--extra", "dev",
        "--universal",
        "--python-version", PYTHON,
        "--custom-compile-command", "nox -s lock",
        "--output-file", LOCK,
        *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHON)
def cluster(session: nox.Session) -> None:
    """The local cluster: `nox -s cluster -- up [--tier control-plane|full]`, `down`, `status`,
    `restart COMPONENT [--kill]` (keeps all state, for failure tests)."""
    _install(session)
    session.run("python", "-m", "tests.cluster", *(session.posargs or ["status"]))
