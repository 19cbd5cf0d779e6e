"""What went wrong in one scenario, from the Tasks, pods and Events the API server holds
afterwards (pure: raw API items in, counts and reasons out)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from taskflow import labels

from .workload import Expected, expected

FINISHED: Final = frozenset({"Successful", "Failure", "Cancelled"})


@dataclass
class Verdict:
    tasks: int = 0
    lost: int = 0  # never reached a final status (or vanished)
    duplicated: int = 0  # two pods for one attempt, an attempt too many, an Event twice
    wrong: int = 0  # final, but not the status its steps deserve
    problems: list[str] = field(default_factory=list)


def failed_step(status: Mapping[str, Any]) -> str | None:
    """The first step that ended with a non-zero exit code."""
    for step in status.get("steps") or []:
        if step.get("state") == "Terminated" and step.get("exitCode") not in (None, 0):
            return str(step["name"])
    return None


def _wrong(status: Mapping[str, Any], want: Expected) -> str | None:
    word = status.get("status")
    if word != want.word:
        reason = next(
            (
                c.get("reason")
                for c in status.get("conditions") or []
                if c.get("type") == "Succeeded"
            ),
            None,
        )
        return f"{word}/{reason}, want {want.word}"
    if want.failed_step is not None and failed_step(status) != want.failed_step:
        return f"failed at {failed_step(status)}, want {want.failed_step}"
    attempt = int(status.get("attempt") or 1)
    if attempt != want.attempts:
        return f"ended in attempt {attempt}, want {want.attempts}"
    return None


def _pod_problems(
    uid: str, pods: Iterable[Mapping[str, Any]], want: Expected
) -> tuple[list[str], list[str]]:
    """(too many, missing): exactly one pod per attempt 1..want.attempts."""
    per_attempt = Counter(
        int((p["metadata"].get("labels") or {}).get(labels.ATTEMPT_LABEL, "1"))
        for p in pods
        if (p["metadata"].get("labels") or {}).get(labels.TASK_UID_LABEL) == uid
    )
    extra = [
        f"{count} pods for attempt {attempt}"
        for attempt, count in sorted(per_attempt.items())
        if count > 1 or attempt > want.attempts
    ]
    missing = [
        f"no pod for attempt {a}" for a in range(1, want.attempts + 1) if a not in per_attempt
    ]
    return extra, missing


def _event_problems(uid: str, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """An Event told twice: two Event objects with the same reason and message for one Task,
    or one Event counted more than once."""
    mine = [e for e in events if (e.get("involvedObject") or {}).get("uid") == uid]
    seen = Counter((e.get("reason"), e.get("message")) for e in mine)
    out = [f"Event {reason} x{n}: {message}" for (reason, message), n in seen.items() if n > 1]
    out += [
        f"Event {e.get('reason')} count {e['count']}: {e.get('message')}"
        for e in mine
        if int(e.get("count") or 1) > 1
    ]
    return out


def judge(
    sent: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
) -> Verdict:
    """Compare what was sent (Task manifests) with what the cluster holds."""
    by_name = {t["metadata"]["name"]: t for t in tasks}
    pods, events = list(pods), list(events)
    v = Verdict()
    for doc in sent:
        v.tasks += 1
        name = doc["metadata"]["name"]
        want = expected(doc)
        task = by_name.get(name)
        if task is None:
            v.lost += 1
            v.problems.append(f"{name}: gone")
            continue
        status = task.get("status") or {}
        uid = task["metadata"]["uid"]
        extra, missing = _pod_problems(uid, pods, want)
        told_twice = _event_problems(uid, events)
        if status.get("status") not in FINISHED:
            v.lost += 1
            v.problems.append(f"{name}: still {status.get('status')}/{status.get('progress')}")
        elif (why := _wrong(status, want)) is not None or missing:
            # A final status without the pod that earned it is as wrong as a wrong word.
            v.wrong += 1
            v.problems += [f"{name}: {p}" for p in ([why] if why else []) + missing]
        if extra or told_twice:
            v.duplicated += 1
            v.problems += [f"{name}: {p}" for p in extra + told_twice]
    return v


def finished(tasks: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for t in tasks if (t.get("status") or {}).get("status") in FINISHED)
