"""The ``agent`` part: taskflow-agent's start-up, idle memory and CPU of waiting steps,
wake-up latency, hand-off between steps, sizes. Real processes on this machine; no cluster.
:func:`run` gives the runner's rows; ``python -m benchmarks.tools.agent`` prints every
measurement below.

* start-up: median wall time of ``taskflow-agent step ... -- /bin/true`` minus that of
  ``/bin/true`` alone (the agent's own cost: interpreter, wait check, spawn, state write),
  and of a bare ``taskflow-agent`` (usage error: the interpreter's floor); ``--runs`` each.
* idle: ``--waiters`` agents each waiting for a previous step that never finishes, after
  they settle: median RSS and mean PSS (``/proc/PID/smaps_rollup``; PSS shares the
  binary's pages between them), and CPU over 3 s in % of one core, inotify vs 50 ms poll.
* wake-up: from writing the previous step's state (rename) to the agent's ``startedAt``
  (ms precision), median of ``--runs``, inotify vs poll at 50 ms and 10 ms.
* hand-off: a chain of ``--chain`` agents in one run directory, each step ``sleep 1``,
  started together: next ``startedAt`` - previous ``finishedAt`` (the agents' timestamps).

The binary is built by ``python3 -m taskflow_agent.build`` with Debian's /usr/bin/python3
and cached under ~/.cache/taskflow-agent/<source hash>/.
"""

from __future__ import annotations

import calendar
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import Metric

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
BUILD_PYTHON = "/usr/bin/python3"
ENV = {"PATH": "/usr/bin:/bin"}
TICK = os.sysconf("SC_CLK_TCK")


def cached_binary() -> Path:
    digest = subprocess.run(
        [BUILD_PYTHON, "-c", "from taskflow_agent.build import source_digest as d; print(d())"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = Path.home() / ".cache" / "taskflow-agent" / digest / "taskflow-agent"
    if not path.is_file():
        started = time.monotonic()
        subprocess.run(
            [BUILD_PYTHON, "-m", "taskflow_agent.build", str(path)],
            env={**os.environ, "PYTHONPATH": str(SRC)},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"built {path} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return path


def _median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def startup(binary: Path, runs: int, tmp: Path) -> dict[str, float]:
    run = tmp / "startup"
    run.mkdir()
    step = [str(binary), "step", "--name", "s", "--run-dir", str(run), "--", "/bin/true"]
    py = [sys.executable, "-m", "taskflow_agent", "step", "--name", "p", "--run-dir", str(run)]
    true_ms = _median_ms(["/bin/true"], runs)
    return {
        "bare /bin/true (ms)": true_ms,
        "taskflow-agent, usage error (ms)": _median_ms([str(binary)], runs),
        "taskflow-agent step -- /bin/true, minus /bin/true (ms)": _median_ms(step, runs) - true_ms,
        "python -m taskflow_agent step, same (ms)": _median_ms([*py, "--", "/bin/true"], runs)
        - true_ms,
    }


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _smaps(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])
    return out


def idle(binary: Path, waiters: int, mode: str, tmp: Path) -> dict[str, float]:
    run = tmp / f"idle-{mode}"
    run.mkdir()
    (run / "never").mkdir()
    procs = []
    try:
        for i in range(waiters):
            (run / f"w{i}").mkdir()
            argv = [
                str(binary),
                "step",
                "--name",
                f"w{i}",
                "--prev",
                "never",
                "--run-dir",
                str(run),
            ]
            argv += ["--wait", mode, "--poll-interval", "50ms", "--", "/bin/true"]
            procs.append(subprocess.Popen(argv, env=ENV))
        time.sleep(1.0)  # settle: start-up done, all waiting
        before = sum(_ticks(p.pid) for p in procs)
        t = time.monotonic()
        time.sleep(3.0)
        cpu = (sum(_ticks(p.pid) for p in procs) - before) / TICK / (time.monotonic() - t)
        mem = [_smaps(p.pid) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return {
        f"{mode}: RSS per waiter, median (MB)": statistics.median(m["Rss"] for m in mem) / 1024,
        f"{mode}: PSS per waiter, mean of {waiters} (MB)": statistics.mean(m["Pss"] for m in mem)
        / 1024,
        f"{mode}: CPU of {waiters} waiters (% of a core)": cpu * 100,
    }


def _ms(stamp: str) -> float:
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000.0 + int(stamp[20:23])


def _state(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_bytes())
    return data


def wakeup(binary: Path, runs: int, mode: str, interval: str, tmp: Path) -> float:
    delays = []
    for i in range(runs):
        run = tmp / f"wake-{mode}-{interval}-{i}"
        (run / "a").mkdir(parents=True)
        argv = [str(binary), "step", "--name", "b", "--prev", "a", "--run-dir", str(run)]
        argv += ["--wait", mode, "--poll-interval", interval, "--", "/bin/true"]
        with subprocess.Popen(argv, env=ENV) as p:
            # Well past start-up (measure the wait, not the start), at a random phase of the
            # poll interval.
            time.sleep(0.5 + random.uniform(0, 0.05))
            tmp_state = run / "a" / "state.json.tmp"
            tmp_state.write_text(
                '{"v":1,"name":"a","exitCode":0,"startedAt":null,"finishedAt":null,'
                '"skipped":false,"timedOut":false,"abort":false,"error":null,"results":[]}'
            )
            written = time.time_ns() / 1e6
            os.rename(tmp_state, run / "a" / "state.json")
            p.wait(timeout=30)
        delays.append(_ms(str(_state(run / "b" / "state.json")["startedAt"])) - written)
    return statistics.median(delays)


def handoff(binary: Path, steps: int, tmp: Path) -> list[float]:
    run = tmp / "chain"
    names = [f"s{i}" for i in range(steps)]
    procs = []
    for i, name in enumerate(names):
        (run / name).mkdir(parents=True)
        argv = [str(binary), "step", "--name", name, "--run-dir", str(run)]
        argv += ["--prev", names[i - 1]] if i else []
        procs.append(subprocess.Popen([*argv, "--", "sleep", "1"], env=ENV))
    for p in procs:
        p.wait(timeout=steps * 5)
    states = [_state(run / n / "state.json") for n in names]
    return [
        _ms(str(b["startedAt"])) - _ms(str(a["finishedAt"])) for a, b in itertools.pairwise(states)
    ]


START = "taskflow-agent step -- /bin/true, minus /bin/true (ms)"
RSS = "inotify: RSS per waiter, median (MB)"
PSS = "inotify: PSS per waiter, mean of {n} (MB)"


def run(runs: int, waiters: int, image: str | None) -> list[Metric]:
    """``image``: a built agent image, ``localhost/...`` (buildah's storage: uncompressed
    size) or ``HOST:PORT/REPO:TAG`` in a plain-HTTP registry (compressed, as pushed)."""
    binary = cached_binary()
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        start = startup(binary, runs, Path(tmp))
        waiting = idle(binary, waiters, "inotify", Path(tmp))
    image_mb, how = _image_mb(image) if image else (None, "")
    return [
        Metric(
            "agent.start_ms",
            f"agent step -- /bin/true minus /bin/true, median of {runs}",
            start[START],
            "ms",
        ),
        Metric(
            "agent.idle_rss_mb",
            f"RSS per waiting step, median of {waiters}",
            waiting[RSS],
            "MB",
            f"PSS {waiting[PSS.format(n=waiters)]:.2f} MB (shared pages split)",
        ),
        Metric(
            "agent.image_mb",
            f"agent image {image} ({how})" if image else "agent image",
            image_mb,
            "MB",
            note="" if image else "no --agent-image given: see agent.binary_mb",
        ),
        Metric(
            "agent.binary_mb",
            "static taskflow-agent executable",
            binary.stat().st_size / 1e6,
            "MB",
        ),
    ]


def _image_mb(image: str) -> tuple[float, str]:
    from tests.e2e import images

    if image.startswith("localhost/"):
        return images.image_size(image) / 1e6, "uncompressed, buildah"
    host, _, rest = image.partition("/")
    repo, _, tag = rest.rpartition(":")
    return images.registry_image_size(host, repo, tag) / 1e6, "compressed, as pushed"
