"""Detached processes with pidfiles (pid + start time), readiness waits and stopping."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import HarnessError


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _is_zombie(pid: int) -> bool:
    """True once every thread of `pid` has exited. A killed multi-threaded process's leader
    shows `Z` while its other threads still tear down and hold its sockets: restarting it
    then fails with "address already in use"."""
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for thread in threads:
        try:
            state = (thread / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if state != "Z":
            return False
    return True


class Procs:
    """Processes of one cluster, tracked in `<state>/pids/<name>.json`."""

    def __init__(self, state: Path) -> None:
        self.pids = state / "pids"
        self.logs = state / "logs"

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # own process group: stopped as a group
            )
        record = {
            "pid": proc.pid,
            "start": _start_time(proc.pid),
            "argv": list(argv),
            "env": dict(env or {}),
            "cwd": str(cwd) if cwd is not None else None,
        }
        (self.pids / f"{name}.json").write_text(json.dumps(record))
        return proc.pid

    def restart(self, name: str, *, kill: bool = False) -> int:
        """Stop `name` (SIGKILL at once with `kill`, else as :meth:`stop`) and start it again
        with the same command line; its state on disk is kept."""
        record = json.loads((self.pids / f"{name}.json").read_text())
        if kill:
            pid = self.pid(name)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while self.pid(name) is not None and time.monotonic() < deadline:
                    time.sleep(0.05)
                with contextlib.suppress(ChildProcessError):  # our own child: reap it
                    os.waitpid(pid, os.WNOHANG)
            (self.pids / f"{name}.json").unlink(missing_ok=True)
        else:
            self.stop(name)
        cwd = record.get("cwd")
        return self.start(
            name, record["argv"], env=record.get("env"), cwd=Path(cwd) if cwd else None
        )

    def names(self) -> list[str]:
        if not self.pids.is_dir():
            return []
        files = sorted(self.pids.glob("*.json"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]

    def pid(self, name: str) -> int | None:
        """The live pid of `name`, or None (gone, zombie, or pid reused by another process)."""
        try:
            record = json.loads((self.pids / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None
        pid = int(record["pid"])
        if _start_time(pid) != record["start"] or _is_zombie(pid):
            return None
        return pid

    def alive(self, name: str) -> bool:
        return self.pid(name) is not None

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it does not go in time."""
        pid = self.pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid(name) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        (self.pids / f"{name}.json").unlink(missing_ok=True)

    def tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    *,
    procs: Procs | None = None,
    name: str | None = None,
) -> None:
    """Poll `check` until true; fail early (with its log) if process `name` died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
        if procs is not None and name is not None and not procs.alive(name):
            raise HarnessError(f"{name} exited while waiting for {what}:\n{procs.tail(name)}")
        if time.monotonic() > deadline:
            tail = procs.tail(name) if procs is not None and name is not None else ""
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.1)


def tcp_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def https_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    """True if GET url answers 200 (certificate not verified unless a context is given)."""
    if context is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, timeout=2, context=context) as resp:
        return int(resp.status) == 200


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return int(resp.status) == 200


def http_answers(url: str) -> bool:
    """True once GET url gets any HTTP answer (a registry asking for credentials is up)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
