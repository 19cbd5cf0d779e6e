"""The arm64 agent, cross-compiled on this machine (``taskflow_agent.build --arch arm64``)
and run under ``qemu-aarch64`` user emulation: the same table of argv, environment, exit
codes, signals, timeouts, results and chains as the native binary (the tests are imported
from their modules and run here with the ``agent`` fixture below), the read-only chroot,
and the build itself (an aarch64 static ELF, byte-identical when rebuilt).

qemu is invoked explicitly, no binfmt_misc registration: the agent's children (``sh``,
``true``) are this machine's own programs, which the emulated ``posix_spawn`` execs natively.
Tests whose step runs the arm64 agent itself as a child, or that time the native start-up,
have their own versions here. Skipped, saying why, without the cross compiler, the arm64
``libpython3-dev`` or qemu (``tests/unit/agent/apt-packages.txt``).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from taskflow_agent import build as builder
from tests.unit.agent.conftest import (
    BASE_ENV,
    BUILD_PYTHON,
    DEADLINE,
    SRC,
    Agent,
    state,
    wait_until,
)
from tests.unit.agent.test_chain import (  # noqa: F401 (collected and run here)
    test_abort_propagates_from_the_middle,
    test_on_error_along_a_chain,
    test_reaps_orphans_as_pid_1,
    test_results_flow_down_a_chain,
    test_steps_run_in_order,
)
from tests.unit.agent.test_static import (  # noqa: F401
    ROOT_ONLY,
    _in_chroot,
    _rootfs,
    inotify_waiting,
    test_an_inotify_waiter_uses_no_cpu,
    test_python_variables_and_a_c_locale_change_nothing,
)
from tests.unit.agent.test_step import (  # noqa: F401
    test_a_bad_reference_fails_the_step_without_running_it,
    test_a_long_error_is_cut,
    test_a_missing_result_fails_the_step,
    test_a_missing_script_fails_the_step,
    test_a_referenced_result_must_be_a_regular_file,
    test_a_result_must_be_a_regular_file,
    test_a_script_without_references_runs_in_place,
    test_a_timed_out_step_that_exits_zero_still_fails,
    test_an_unreadable_previous_state_fails_the_step,
    test_arch_without_this_machine_fails_the_step,
    test_child_gets_exactly_its_argv_and_environment,
    test_command_not_found,
    test_exit_codes,
    test_killed_by_a_signal_is_128_plus_signal,
    test_path_lookup_uses_the_childs_path,
    test_references_in_a_script,
    test_references_in_argv_and_env,
    test_results_are_collected_as_written,
    test_results_must_fit_the_termination_message,
    test_signals_reach_the_child,
    test_state_is_written_even_when_the_termination_message_cannot_be,
    test_state_of_a_successful_step,
    test_timeout_kills_after_the_grace,
    test_timeout_terminates_then_reports,
    test_usage_error,
)

CROSS_CC = "aarch64-linux-gnu-gcc"
# The static build runs in a chroot without libc; the dynamic one (qemu-user) elsewhere.
QEMU_STATIC = shutil.which("qemu-aarch64-static")
QEMU = QEMU_STATIC or shutil.which("qemu-aarch64")
EM_AARCH64 = 183
PT_INTERP = 3


def build_arm64(out: Path) -> tuple[Path | None, str]:
    """Cross-build the arm64 agent at ``out``; (None, why) when this machine cannot."""
    if shutil.which(CROSS_CC) is None:
        return None, f"no {CROSS_CC} (apt-get install gcc-aarch64-linux-gnu)"
    if not Path(BUILD_PYTHON).is_file():
        return None, f"{BUILD_PYTHON} is missing"
    proc = subprocess.run(
        [BUILD_PYTHON, "-m", "taskflow_agent.build", str(out), "--arch", "arm64"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        return None, f"the arm64 build failed: {proc.stderr.strip()}"
    return out, ""


@pytest.fixture(scope="session")
def arm64_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    started = time.monotonic()
    path, why = build_arm64(tmp_path_factory.mktemp("arm64") / "taskflow-agent")
    if path is None:
        pytest.skip(why)
    sys.stderr.write(f"\n[agent] arm64 build: {time.monotonic() - started:.1f}s\n")
    return path


@pytest.fixture(scope="session")
def qemu() -> str:
    if QEMU is None:
        pytest.skip("no qemu-aarch64 (apt-get install qemu-user-static)")
    return QEMU


class QemuAgent(Agent):
    """qemu-user hands the guest its environment in reverse order (it builds the list by
    prepending), which a real arm64 machine does not: the environment goes in reversed,
    so the agent sees it as the test wrote it."""

    def start(
        self,
        run: Path,
        name: str,
        *opts: str,
        argv: Sequence[str],
        env: Mapping[Any, Any] | None = None,
        **kw: Any,
    ) -> subprocess.Popen[bytes]:
        given = dict(BASE_ENV if env is None else env)
        flipped = dict(reversed(given.items()))
        return super().start(run, name, *opts, argv=argv, env=flipped, **kw)


@pytest.fixture(scope="session")
def arm64_agent(arm64_binary: Path, qemu: str) -> Agent:
    return QemuAgent("arm64", [qemu, str(arm64_binary)])


# The imported tests ask for these: here they get the emulated arm64 binary.
@pytest.fixture
def agent(arm64_agent: Agent) -> Agent:
    return arm64_agent


@pytest.fixture
def static_agent(arm64_agent: Agent) -> Agent:
    return arm64_agent


def _elf(path: Path) -> tuple[int, list[int]]:
    """(e_machine, the program header types) of a little-endian ELF64 file."""
    data = path.read_bytes()
    assert data[:6] == b"\x7fELF\x02\x01", "not a little-endian ELF64 file"
    (machine,) = struct.unpack_from("<H", data, 18)
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return machine, types


def test_an_aarch64_static_executable_rebuilt_byte_for_byte(
    arm64_binary: Path, tmp_path: Path
) -> None:
    machine, types = _elf(arm64_binary)
    assert machine == EM_AARCH64
    assert PT_INTERP not in types  # static: no dynamic loader
    again, why = build_arm64(tmp_path / "again")
    assert again is not None, why
    assert again.read_bytes() == arm64_binary.read_bytes()


def test_the_zip_is_the_native_builds(arm64_binary: Path) -> None:
    """Bytecode and stdlib sources do not depend on the architecture: both binaries end
    with the same zip (built by the one interpreter that ran both builds)."""
    import zipfile

    with zipfile.ZipFile(arm64_binary) as z:
        names = z.namelist()
    assert "taskflow_agent/cli.pyc" in names
    assert not [n for n in names if "build" in n.split("/")[:2]]


def test_a_library_of_another_version_is_refused(tmp_path: Path) -> None:
    lib = tmp_path / "libpython3.11.a"
    lib.write_bytes(b"!<arch>\n...\x003.11.99\x00...")
    with pytest.raises(builder.BuildError, match="is not Python 3"):
        builder.check_version(lib)
    mine = ".".join(map(str, sys.version_info[:3]))
    lib.write_bytes(b"!<arch>\n...\x00" + mine.encode() + b"\x00...")
    builder.check_version(lib)


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["out"], ("out", {})),
        (["out", "--arch", "arm64"], ("out", {"--arch": "arm64"})),
        (
            ["out", "--cc", "x-gcc", "--arch", "arm64"],
            ("out", {"--cc": "x-gcc", "--arch": "arm64"}),
        ),
        ([], None),
        (["--arch", "arm64"], None),
        (["out", "--arch"], None),
        (["out", "--cpu", "arm64"], None),
        (["out", "--arch", "arm64", "--arch", "amd64"], None),
    ],
)
def test_builder_command_line(argv: list[str], parsed: tuple[str, dict[str, str]] | None) -> None:
    assert builder._parse(argv) == parsed


def test_an_unknown_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(builder.BuildError, match="unknown --arch 's390x'; known: amd64, arm64"):
        builder.build(tmp_path / "x", arch="s390x")


def test_it_runs_the_arm64_command(arm64_agent: Agent, run: Path) -> None:
    """Under emulation the agent's machine is aarch64: of an image's per-platform argvs it
    keeps arm64's (the native twin of this test keeps the host's)."""
    opts = ("--arch", "amd64=2", "--arch", "arm64/v8=3")
    p = arm64_agent.step(run, "s", *opts, argv=["echo", "amd64", "echo", "arm64", "$(date)"])
    assert (p.returncode, p.stdout, p.stderr) == (0, b"arm64 $(date)\n", b"")


def test_signal_while_waiting_ends_the_wait_and_skips(arm64_agent: Agent, run: Path) -> None:
    (run / "a").mkdir()
    with arm64_agent.start(run, "b", "--prev", "a", argv=["touch", str(run / "ran")]) as p:
        try:
            wait_until(lambda: inotify_waiting(p.pid), timeout=DEADLINE, what="the agent's wait")
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=DEADLINE)
        finally:
            p.kill()  # a failure must not leave the test waiting for it
    s = state(run, "b")
    assert (p.returncode, out, err) == (0, b"", b"")
    assert (s["skipped"], s["abort"], s["error"]) == (True, True, "SIGTERM before the step started")
    assert not (run / "ran").exists()


def test_install_copies_itself(arm64_agent: Agent, arm64_binary: Path, tmp_path: Path) -> None:
    p = subprocess.run(
        [*arm64_agent.prefix, "install", str(tmp_path)],
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    assert (tmp_path / "taskflow-agent").read_bytes() == arm64_binary.read_bytes()


@ROOT_ONLY
def test_in_a_read_only_chroot_without_libc_or_proc(arm64_binary: Path, tmp_path: Path) -> None:
    """The arm64 image's situation: its agent alone in a read-only root without libc,
    /proc or /tmp, as uid 65532, PID 1; the static qemu beside it stands in for the CPU."""
    if QEMU_STATIC is None:
        pytest.skip("no qemu-aarch64-static (apt-get install qemu-user-static)")
    root = _rootfs(tmp_path, arm64_binary)
    if not (root / "bin" / "sh").exists():
        pytest.skip("no static busybox on this host for the shell steps")
    shutil.copy2(QEMU_STATIC, root / "qemu")
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o777)
    agent = ["/qemu", "/taskflow-agent"]
    step = [*agent, "step", "--termination-path", "/taskflow/run/term"]
    # What the init container does (here not as a step: the step's child would be arm64).
    p = _in_chroot(root, run, [*agent, "install", "/taskflow/run"])
    assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
    assert (run / "taskflow-agent").read_bytes() == arm64_binary.read_bytes()
    script = "id -u; ls /proc 2>&1; echo -n v > /taskflow/run/a/results/r; touch /x || true"
    p = _in_chroot(root, run, [*step, "--name", "a", "--result", "r", "--", "sh", "-c", script])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert lines[0] == "65532"
    assert "No such file or directory" in lines[1]
    assert b"Read-only file system" in p.stderr
    assert (run / "a" / "state.json").stat().st_uid == 65532
    assert (run / "term").read_bytes() == (run / "a" / "state.json").read_bytes()
    uses = ["sh", "-c", 'echo "$1"', "sh", "$(steps.a.results.r)"]
    p = _in_chroot(root, run, [*step, "--name", "b", "--prev", "a", "--", *uses])
    assert (p.returncode, p.stdout, p.stderr) == (0, b"v\n", b"")
    assert state(run, "b")["exitCode"] == 0
