"""The per-step table: the pod's container statuses matched to the Task's steps by name, in
spec order, and what can be read off it (progress, the current step, when things started)."""

from __future__ import annotations

from datetime import datetime

from taskflow.api.pod import ContainerStatus, Pod
from taskflow.api.task import Task
from taskflow.api.task_status import STEP_RUNNING, STEP_TERMINATED, StepStatus
from taskflow.status._agent import (
    FAILING_STEP_REASONS,
    STEP_REASON_CONTINUED,
    agent_step_statuses,
    is_agent_pod,
    waiting_step,
)
from taskflow.status._clock import kubelet_time, parse_time, utc


def step_statuses(task: Task, pod: Pod) -> list[StepStatus]:
    if is_agent_pod(pod):
        return agent_step_statuses(task, pod)
    by_name: dict[str, ContainerStatus] = {}
    for cs in [*pod.status.init_container_statuses, *pod.status.container_statuses]:
        by_name[cs.name] = cs
    out = []
    for step in task.spec.steps:
        found = by_name.get(step.name)
        state = found.state if found is not None else None
        if state is not None and state.terminated is not None:
            t = state.terminated
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_TERMINATED,
                    exit_code=t.exit_code,
                    reason=t.reason or None,
                    message=t.message or None,
                    started_at=kubelet_time(t.started_at),
                    finished_at=kubelet_time(t.finished_at),
                )
            )
        elif state is not None and state.running is not None:
            r = state.running
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_RUNNING,
                    started_at=kubelet_time(r.started_at),
                )
            )
        else:
            w = state.waiting if state is not None else None
            out.append(waiting_step(step.name, w.reason if w else None, w.message if w else None))
    return out


def progress(steps: list[StepStatus]) -> str:
    started = sum(1 for s in steps if s.state in (STEP_RUNNING, STEP_TERMINATED))
    return f"{started}/{len(steps)}"


def _ok(s: StepStatus) -> bool:
    """Finished without failing the Task (a failure with onError continue counts as ok)."""
    return s.state == STEP_TERMINATED and not is_failed(s)


def is_failed(s: StepStatus) -> bool:
    """Finished and failing the Task."""
    if s.state != STEP_TERMINATED or s.reason == STEP_REASON_CONTINUED:
        return False
    return s.exit_code != 0 or s.reason in FAILING_STEP_REASONS


def current_step(steps: list[StepStatus]) -> int | None:
    """Index of the first step that has not succeeded."""
    for i, s in enumerate(steps):
        if not _ok(s):
            return i
    return None


def start_of(steps: list[StepStatus], pod: Pod) -> datetime | None:
    if steps and steps[0].started_at:
        return parse_time(steps[0].started_at)
    if pod.status.start_time is not None:
        return utc(pod.status.start_time)
    return None


def became_current(steps: list[StepStatus], i: int, pod: Pod) -> datetime | None:
    prev_end = steps[i - 1].finished_at if i > 0 else None
    if prev_end:
        return parse_time(prev_end)
    if pod.status.start_time is not None:
        return utc(pod.status.start_time)
    if pod.metadata.creation_timestamp is not None:
        return utc(pod.metadata.creation_timestamp)
    return None
