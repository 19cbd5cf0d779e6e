"""The sidecars (``spec.sidecars``) as the pod reports them: ``status.sidecars``, and which
of them have not started yet.

A native sidecar is an init container with ``restartPolicy: Always``: it shows up in the
pod's ``initContainerStatuses``, matched here by name (the kubelet keeps no order there).
The kubelet starts the init containers in the pod's order, each once the previous one has
started (a sidecar: once its startupProbe passed), and the regular containers once all have:
a sidecar whose later containers have ever run has started, whatever its ``started`` says
now (it goes false while a crashed sidecar waits to be restarted). Step statuses never read
sidecar containers: steps are matched by their own names.
"""

from __future__ import annotations

import msgspec

from taskflow.api.pod import ContainerStatus, Pod
from taskflow.api.task import Sidecar, Task
from taskflow.api.task_status import STEP_RUNNING, STEP_TERMINATED, STEP_WAITING, SidecarStatus


class Unstarted(msgspec.Struct, frozen=True, kw_only=True):
    """A sidecar the kubelet has not started yet, and what it says about it."""

    sidecar: Sidecar
    #: the waiting reason (``ErrImagePull``, ``CrashLoopBackOff``, ...), if any
    reason: str | None
    message: str | None
    #: the last run's end, when it ran and stopped before it counted as started
    last_exit: str | None


def sidecar_statuses(task: Task, pod: Pod) -> list[SidecarStatus]:
    """``status.sidecars``: one per sidecar of the spec, in spec order."""
    by_name = {cs.name: cs for cs in pod.status.init_container_statuses}
    return [_status(c.name, by_name.get(c.name)) for c in task.spec.sidecars]


def _status(name: str, cs: ContainerStatus | None) -> SidecarStatus:
    if cs is None:
        return SidecarStatus(name=name, state=STEP_WAITING)
    w = cs.state.waiting
    t = cs.state.terminated
    state = STEP_WAITING
    if t is not None:
        state = STEP_TERMINATED
    elif cs.state.running is not None:
        state = STEP_RUNNING
    said = t if t is not None else w
    return SidecarStatus(
        name=name,
        state=state,
        ready=cs.ready,
        restarts=cs.restart_count,
        exit_code=t.exit_code if t is not None else None,
        reason=(said.reason or None) if said is not None else None,
        message=(said.message or None) if said is not None and state != STEP_RUNNING else None,
    )


def _ran(cs: ContainerStatus | None) -> bool:
    """The container has run at some point (it runs, or a run of it ended)."""
    if cs is None:
        return False
    s = cs.state
    return s.running is not None or s.terminated is not None or cs.last_state.terminated is not None


def unstarted(task: Task, pod: Pod) -> list[Unstarted]:
    """The sidecars the kubelet reports and has not started yet, in spec order."""
    if not task.spec.sidecars:
        return []
    by_name = {cs.name: cs for cs in pod.status.init_container_statuses}
    regular = {cs.name: cs for cs in pod.status.container_statuses}
    order = [c.name for c in pod.spec.init_containers]
    if any(_ran(cs) for cs in regular.values()):
        return []  # every init container has started (or ended) before these
    out = []
    for c in task.spec.sidecars:
        cs = by_name.get(c.name)
        if cs is None or cs.started:
            continue
        later = order[order.index(c.name) + 1 :] if c.name in order else []
        if any(_ran(by_name.get(n)) for n in later):
            continue
        w = cs.state.waiting
        last = cs.last_state.terminated
        out.append(
            Unstarted(
                sidecar=c,
                reason=(w.reason or None) if w else None,
                message=(w.message or None) if w else None,
                last_exit=(
                    f"exit code {last.exit_code}" + (f", {last.reason}" if last.reason else "")
                    if last is not None
                    else None
                ),
            )
        )
    return out
