"""Memory the engine's cache holds for finished Tasks with big scripts.

    python -m benchmarks.tools.cache_memory                 # 10k Tasks, slim (the cache)
    python -m benchmarks.tools.cache_memory --mode whole       # as decoded (the old cache)
    python -m benchmarks.tools.cache_memory --last-applied     # + kubectl's annotation

Each Task has three steps, one of them a ``--script-chars`` script (default 50,000), and a
finished status; it is encoded to JSON (the bytes of a watch event), decoded the way the
engine decodes it and stored: through ``Cache.put_task`` (``slim``: what the operator
does) or, for comparison, straight into a dict (``whole``: every decoded field kept).
Printed: Python heap held after all puts (tracemalloc) and the growth of the
process's resident set, in total and per Task. Run each mode in its own process (the
resident set never shrinks).
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc
from typing import Any

from taskflow.engine.cache import LAST_APPLIED, Cache, TaskEntry, decode_task, task_uid


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def task_json(n: int, script_chars: int, last_applied: bool) -> bytes:
    line = f"echo task {n} line\n"
    script = (line * (script_chars // len(line) + 1))[:script_chars]
    doc: dict[str, Any] = {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": {
            "name": f"task-{n}",
            "namespace": "bench",
            "uid": f"00000000-0000-4000-8000-{n:012d}",
            "resourceVersion": str(1000 + n),
            "generation": 1,
            "creationTimestamp": "2026-01-06T22:00:00Z",
            "labels": {"team": "bench"},
        },
        "spec": {
            "steps": [
                {
                    "name": "fetch",
                    "image": "busybox:1.28",
                    "command": ["sh", "-c"],
                    "args": ["echo fetching " * 20],
                },
                {
                    "name": "build",
                    "image": "busybox:1.28",
                    "script": script,
                    "env": [{"name": f"VAR{i}", "value": "x" * 40} for i in range(10)],
                },
                {"name": "report", "image": "busybox:1.28", "args": ["10"]},
            ]
        },
        "status": {
            "status": "Successful",
            "progress": "3/3",
            "podName": f"task-{n}-pod",
            "startTime": "2026-01-06T22:00:01Z",
            "completionTime": "2026-01-06T22:00:30Z",
            "duration": "29s",
            "steps": [
                {
                    "name": s,
                    "state": "Terminated",
                    "exitCode": 0,
                    "startedAt": "2026-01-06T22:00:01Z",
                    "finishedAt": "2026-01-06T22:00:10Z",
                }
                for s in ("fetch", "build", "report")
            ],
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "True",
                    "reason": "Succeeded",
                    "lastTransitionTime": "2026-01-06T22:00:30Z",
                }
            ],
        },
    }
    if last_applied:
        applied = {k: doc[k] for k in ("apiVersion", "kind", "spec")}
        doc["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(applied)}
    return json.dumps(doc).encode()


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.tools.cache_memory", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--script-chars", type=int, default=50_000)
    p.add_argument("--mode", choices=("slim", "whole"), default="slim")
    p.add_argument("--last-applied", action="store_true")
    args = p.parse_args()

    cache = Cache()
    whole: dict[str, TaskEntry] = {}
    gc.collect()
    rss0 = rss_bytes()
    tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0]
    wire = 0
    for n in range(args.tasks):
        data = task_json(n, args.script_chars, args.last_applied)
        wire += len(data)
        entry = decode_task(data)
        if args.mode == "slim":
            cache.put_task(entry)
        else:
            whole[task_uid(entry)] = entry
        del data, entry
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - heap0
    tracemalloc.stop()
    rss = rss_bytes() - rss0
    held = len(cache.tasks) if args.mode == "slim" else len(whole)
    assert held == args.tasks
    mb = 1024 * 1024
    print(
        f"{args.mode:5} tasks={args.tasks} script={args.script_chars} chars "
        f"last-applied={'yes' if args.last_applied else 'no'} "
        f"json={wire / args.tasks / 1024:.1f} KiB/task | "
        f"heap {heap / mb:8.1f} MiB ({heap / args.tasks:9.0f} B/task) | "
        f"RSS +{rss / mb:8.1f} MiB ({rss / args.tasks:9.0f} B/task)"
    )


if __name__ == "__main__":
    main()
