"""The operator under test: ``python -m taskflow run`` as a child process, out of cluster,
watching only the bench's namespace; its resident set read from /proc."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# The bench measures the engine's own ceiling, not its client-side politeness: no --qps
# limit (the default 50/s would bound every rate below at ~25 Tasks/s).
OPERATOR_ARGS = ("--qps", "0", "--log-level", "warning")
#: The operator as installed: its own defaults (the create part's "defaults" row).
DEFAULT_ARGS = ("--log-level", "warning")
EXTRA_ARGS: list[str] = []  # run.py's --operator-arg (e.g. --workers=16), for experiments
PROFILES: list[Path] = []  # run.py's --profile DIR: py-spy samples each operator run here


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Operator:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    async def wait_ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self._ready):
            if time.monotonic() > deadline:
                raise TimeoutError(f"operator not ready in {within:.0f} s:\n{self.log_tail()}")
            await asyncio.sleep(0.2)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _py_spy(pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the operator into the --profile directory (collapsed stacks:
    one ``frame;frame;... count`` line per stack), if one was asked for."""
    if not PROFILES:
        return None
    out = PROFILES[0] / f"{name}.txt"
    argv = ["py-spy", "record", "--pid", str(pid), "--rate", "50", "--format", "raw"]
    argv += ["--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def operator(
    kubeconfig: str,
    namespace: str,
    extra: Sequence[str] = (),
    base: Sequence[str] = OPERATOR_ARGS,
) -> Iterator[Operator]:
    """Run the operator for ``namespace`` until the block ends (SIGTERM, then SIGKILL);
    ``base``: its arguments before ``extra`` and run.py's --operator-arg."""
    port = free_port()
    argv = [sys.executable, "-m", "taskflow", "run", "--kubeconfig", kubeconfig]
    argv += [
        "--namespace",
        namespace,
        "--bind-address",
        f"127.0.0.1:{port}",
        *base,
        *extra,
        *EXTRA_ARGS,
    ]
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        log = Path(tmp) / "operator.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        spy = _py_spy(proc.pid, namespace)
        try:
            yield Operator(proc, port, log)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                spy.wait(timeout=60)
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
