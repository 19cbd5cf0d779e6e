"""The static executable itself: install, isolation from the step's environment, no CPU
while waiting, and a run in a read-only chroot with no libc, no /proc, no /tmp, as a
non-root user (what an image with one static binary and a hardened pod look like)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from taskflow_agent._state import State, encode, write_atomic
from tests.unit.agent.conftest import DEADLINE, Agent, state, wait_until

ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("chroot") is None,
    reason="needs root, unshare and chroot",
)


def test_install_copies_itself_atomically(static_binary: Path, tmp_path: Path) -> None:
    dest = tmp_path / "bin"
    dest.mkdir()
    p = subprocess.run(
        [str(static_binary), "install", str(dest)],
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    target = dest / "taskflow-agent"
    assert [x.name for x in dest.iterdir()] == ["taskflow-agent"]  # no temp file left
    assert stat.S_IMODE(target.stat().st_mode) == 0o555
    assert target.read_bytes() == static_binary.read_bytes()


def test_install_finds_itself_by_name_in_path(static_binary: Path, tmp_path: Path) -> None:
    """argv[0] without '/' (as a shell or the kubelet may pass it): looked up in PATH, no
    /proc/self/exe."""
    dest = tmp_path / "out"
    dest.mkdir()
    p = subprocess.run(
        ["taskflow-agent", "install", str(dest)],
        executable=str(static_binary),
        env={"PATH": f"/nonexistent:{static_binary.parent}"},
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (p.returncode, p.stderr) == (0, b"")
    assert (dest / "taskflow-agent").read_bytes() == static_binary.read_bytes()


def test_install_refuses_under_python(python_agent: Agent, tmp_path: Path) -> None:
    p = subprocess.run(
        [*python_agent.prefix, "install", str(tmp_path)],
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert p.returncode == 1
    assert p.stderr.startswith(b"taskflow-agent: install copies the static taskflow-agent")
    assert list(tmp_path.iterdir()) == []


def test_python_variables_and_a_c_locale_change_nothing(static_agent: Agent, run: Path) -> None:
    """The step's PYTHON* variables do not steer the agent's interpreter, and no locale
    coercion adds LC_CTYPE to the child's environment."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C",
        "PYTHONPATH": "/nonexistent",
        "PYTHONHOME": "/nonexistent",
        "PYTHONSTARTUP": "/nonexistent",
        "PYTHONWARNINGS": "error",
        "PYTHONVERBOSE": "1",
    }
    p = static_agent.step(run, "s", argv=["sh", "-c", "cat /proc/$$/environ"], env=env)
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout.split(b"\0")[:-1] == [f"{k}={v}".encode() for k, v in env.items()]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def inotify_waiting(pid: int) -> bool:
    """The agent has its inotify watch: it is in its wait."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                return True
        except FileNotFoundError:  # closed since the listing (start-up opens and closes some)
            continue
    return False


def test_an_inotify_waiter_uses_no_cpu(static_agent: Agent, run: Path) -> None:
    (run / "a").mkdir()
    with static_agent.start(run, "b", "--prev", "a", "--wait", "inotify", argv=["true"]) as p:
        try:
            wait_until(lambda: inotify_waiting(p.pid), timeout=DEADLINE, what="the agent's wait")
            time.sleep(0.2)  # from the watch to the sleep in poll
            before = _cpu_ticks(p.pid)
            time.sleep(1.0)
            used = _cpu_ticks(p.pid) - before
            write_atomic(str(run / "a" / "state.json"), encode(State("a")))
            code = p.wait(timeout=DEADLINE)
        finally:
            p.kill()  # a failure must not leave the test waiting for it
    assert (used, code) == (0, 0)


def _rootfs(base: Path, agent: Path) -> Path:
    """A root with the agent, a static busybox if the host has one, and nothing else: no
    libc, no /proc, no /tmp, no /dev."""
    root = base / "root"
    (root / "taskflow" / "run").mkdir(parents=True)
    shutil.copy2(agent, root / "taskflow-agent")
    busybox = Path("/bin/busybox")
    if (
        busybox.is_file()
        and b"statically linked"
        in subprocess.run(["file", "-L", str(busybox)], capture_output=True, check=False).stdout
    ):
        (root / "bin").mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        (root / "bin" / "sh").symlink_to("busybox")
    return root


def _in_chroot(root: Path, run: Path, command: list[str]) -> subprocess.CompletedProcess[bytes]:
    """``command`` in ``root`` mounted read-only (``run`` read-write at /taskflow/run), as
    uid/gid 65532, in fresh mount and PID namespaces (so the agent is PID 1)."""
    quoted = " ".join(f"'{c}'" for c in command)
    script = (
        "set -e; "
        f"mount --bind {root} {root}; mount -o remount,bind,ro {root}; "
        f"mount --bind {run} {root}/taskflow/run; "
        f"exec chroot --userspec=65532:65532 {root} {quoted}"
    )
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "sh", "-c", script],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )


@ROOT_ONLY
def test_in_a_read_only_chroot_without_libc_or_proc(static_binary: Path, tmp_path: Path) -> None:
    root = _rootfs(tmp_path, static_binary)
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o777)
    step = ["/taskflow-agent", "step", "--termination-path", "/taskflow/run/term"]
    # A step whose command is the agent itself: the only program in an image without libc.
    p = _in_chroot(
        root, run, [*step, "--name", "a", "--", "/taskflow-agent", "install", "/taskflow/run/a"]
    )
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    assert (run / "a" / "taskflow-agent").read_bytes() == static_binary.read_bytes()
    assert (run / "a" / "state.json").stat().st_uid == 65532
    assert state(run, "a")["exitCode"] == 0
    assert (run / "term").read_bytes() == (run / "a" / "state.json").read_bytes()
    if not (root / "bin" / "sh").exists():
        pytest.skip("no static busybox on this host for the shell step")
    # A shell step with a result, then a step that uses it.
    p = _in_chroot(
        root,
        run,
        [
            *step,
            "--name",
            "b",
            "--prev",
            "a",
            "--result",
            "r",
            "--",
            "sh",
            "-c",
            "id -u; ls /proc 2>&1; echo -n v > /taskflow/run/b/results/r; touch /x || true",
        ],
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert lines[0] == "65532"
    assert "No such file or directory" in lines[1]
    assert b"Read-only file system" in p.stderr
    p = _in_chroot(
        root,
        run,
        [
            *step,
            "--name",
            "c",
            "--prev",
            "b",
            "--",
            "sh",
            "-c",
            'echo "$1"',
            "sh",
            "$(steps.b.results.r)",
        ],
    )
    assert (p.returncode, p.stdout, p.stderr) == (0, b"v\n", b"")
