"""Fixtures for the agent's tests: real agent processes, in two forms.

- ``python``: ``python -m taskflow_agent`` with this interpreter (the code as written).
- ``static``: the static executable, built once per session with Debian's ``python3`` and
  its ``libpython3.11.a`` (about 1 s, so no cache). Skipped, saying why, where it cannot be
  built (no static libpython or no C compiler).

The ``agent`` fixture runs a test against both; ``static_agent`` only against the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "src"
# The interpreter whose static library is linked: Debian's, not a venv's or pyenv's.
BUILD_PYTHON = os.environ.get("TASKFLOW_AGENT_BUILD_PYTHON", "/usr/bin/python3")
# The child sees exactly this unless a test says otherwise. LC_ALL keeps the python form's
# interpreter from coercing the C locale (which would add LC_CTYPE); the static form never
# does (see build/main.c).
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
DEADLINE = 30.0  # seconds: every process a test starts ends within this


class _Started(subprocess.Popen[bytes]):
    """A Popen whose ``with`` block kills the agent when the block fails: a plain Popen
    waits for it, and an agent still waiting for its previous step would hang the run."""

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        if exc_type is not None and self.poll() is None:
            self.kill()
        super().__exit__(exc_type, value, traceback)


class Agent:
    """One way to run taskflow-agent: ``prefix`` + its arguments."""

    def __init__(self, kind: str, prefix: Sequence[str]) -> None:
        self.kind = kind
        self.prefix = list(prefix)

    def step_argv(self, run: Path, name: str, *opts: str, argv: Sequence[str]) -> list[str]:
        return [*self.prefix, "step", "--name", name, "--run-dir", str(run), *opts, "--", *argv]

    def start(
        self,
        run: Path,
        name: str,
        *opts: str,
        argv: Sequence[str],
        env: Mapping[Any, Any] | None = None,
        **kw: Any,
    ) -> subprocess.Popen[bytes]:
        return _Started(
            self.step_argv(run, name, *opts, argv=argv),
            env=dict(BASE_ENV if env is None else env),
            stdout=kw.pop("stdout", subprocess.PIPE),
            stderr=kw.pop("stderr", subprocess.PIPE),
            **kw,
        )

    def step(
        self,
        run: Path,
        name: str,
        *opts: str,
        argv: Sequence[str],
        env: Mapping[Any, Any] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        with self.start(run, name, *opts, argv=argv, env=env) as p:
            out, err = p.communicate(timeout=DEADLINE)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def state(run: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / name / "state.json").read_bytes())
    return data


def wait_until(check: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``check()`` every 5 ms until true; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def build_static(out: Path) -> tuple[Path | None, str]:
    """Build the executable at ``out``; (None, why) when this machine cannot."""
    if shutil.which("cc") is None:
        return None, "no C compiler (apt-get install gcc)"
    if not Path(BUILD_PYTHON).is_file():
        return None, f"{BUILD_PYTHON} is missing"
    proc = subprocess.run(
        [BUILD_PYTHON, "-m", "taskflow_agent.build", str(out)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return None, f"the static build failed: {proc.stderr.strip()}"
    return out, ""


@pytest.fixture(scope="session")
def static_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    started = time.monotonic()
    path, why = build_static(tmp_path_factory.mktemp("static") / "taskflow-agent")
    if path is None:
        pytest.skip(why)
    sys.stderr.write(f"\n[agent] static build: {time.monotonic() - started:.1f}s\n")
    return path


@pytest.fixture(scope="session")
def static_agent(static_binary: Path) -> Agent:
    return Agent("static", [str(static_binary)])


@pytest.fixture(scope="session")
def python_agent() -> Agent:
    return Agent("python", [sys.executable, "-m", "taskflow_agent"])


@pytest.fixture(params=["python", "static"])
def agent(request: pytest.FixtureRequest) -> Agent:
    found: Agent = request.getfixturevalue(f"{request.param}_agent")
    return found


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run directory, as the pod's emptyDirs make it: created before any step starts."""
    d = tmp_path / "run"
    d.mkdir()
    return d
