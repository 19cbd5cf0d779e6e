"""The step table of an agent pod (docs/agent.md): each step's outcome is the agent's state
JSON in its container's termination message, not the container's own exit.

* terminated, state readable: the agent's exit code, ms timestamps, results and error; a
  skipped step (an earlier one failed, or the pod was stopped first) is ``NotRun``; a step
  that timed out has reason ``TimedOut``; a failure with ``onError: continue`` has reason
  ``ContinuedOnError`` and does not fail the Task.
* terminated, state unreadable: the kubelet cuts each termination message to 12 KiB divided
  by the pod's containers; the container's own exit code and times stand in, and a step
  that declares results is ``ResultsTooLarge`` (a value is never reported cut).
* running: the step is ``Running`` only once its command runs, i.e. once the previous step
  has a state and did not abort; before that its agent waits (``Waiting``, reason
  ``WaitingForPreviousStep``); after an abort it is about to skip (``Waiting``, then
  ``NotRun``).
* until the install container has succeeded, every step waits with its reason.
"""

from __future__ import annotations

from typing import Final

import msgspec

from taskflow.api.pod import ContainerStatus, Pod
from taskflow.api.task import (
    INSTALL_CONTAINER,
    ON_ERROR_CONTINUE,
    STEP_NOT_RUN,
    STEP_RUNNING,
    STEP_TERMINATED,
    STEP_WAITING,
    ResultValue,
    StepStatus,
    Task,
)
from taskflow.labels import EXECUTOR_LABEL
from taskflow.status._clock import kubelet_time

#: the kubelet's budget of termination-message bytes per pod (divided among its containers)
POD_MESSAGE_BUDGET: Final = 12 * 1024

# step reasons of the agent executor
STEP_REASON_TIMED_OUT: Final = "TimedOut"
STEP_REASON_CONTINUED: Final = "ContinuedOnError"
STEP_REASON_SKIPPED: Final = "Skipped"
STEP_REASON_WAITING: Final = "WaitingForPreviousStep"
STEP_REASON_RESULTS: Final = "ResultsTooLarge"
STEP_REASON_UNREADABLE: Final = "StateUnreadable"
#: what the agent's errors about result sizes say (docs/agent.md, rules 6 and 7)
RESULTS_SIZE_ERROR: Final = "a step's results must fit in"


class AgentResult(msgspec.Struct, frozen=True):
    name: str
    value: str


class AgentState(msgspec.Struct, frozen=True, rename="camel"):
    """The agent's state v1 (docs/agent.md "State (v1)")."""

    v: int
    name: str
    exit_code: int
    started_at: str | None
    finished_at: str | None
    skipped: bool
    timed_out: bool
    abort: bool
    error: str | None
    results: list[AgentResult]


def is_agent_pod(pod: Pod) -> bool:
    return pod.metadata.labels.get(EXECUTOR_LABEL) == "agent"


def decode_state(message: str | None) -> AgentState | None:
    """The state in a termination message; None when it is absent, cut or not a v1 state."""
    if not message:
        return None
    try:
        state = msgspec.json.decode(message, type=AgentState)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return state if state.v == 1 else None


def _message_budget(pod: Pod) -> int:
    n = len(pod.spec.init_containers) + len(pod.spec.containers)
    return POD_MESSAGE_BUDGET // max(1, n)


def _from_state(task: Task, i: int, state: AgentState) -> StepStatus:
    step = task.spec.steps[i]
    results = [ResultValue(name=r.name, value=r.value) for r in state.results]
    if state.skipped:
        return StepStatus(
            name=step.name,
            state=STEP_NOT_RUN,
            reason=STEP_REASON_SKIPPED,
            message=state.error,
        )
    failed = state.exit_code != 0 or state.timed_out or state.error is not None
    reason: str | None = None
    if failed and step.on_error == ON_ERROR_CONTINUE and not state.abort:
        reason = STEP_REASON_CONTINUED
    elif state.timed_out:
        reason = STEP_REASON_TIMED_OUT
    elif state.error is not None and RESULTS_SIZE_ERROR in state.error:
        reason = STEP_REASON_RESULTS
    elif failed:
        reason = "Error"
    exit_code = state.exit_code
    if failed and exit_code == 0 and reason != STEP_REASON_CONTINUED:
        exit_code = 1  # e.g. a missing result: the step failed although its command did not
    return StepStatus(
        name=step.name,
        state=STEP_TERMINATED,
        exit_code=exit_code,
        reason=reason,
        message=state.error,
        started_at=state.started_at,
        finished_at=state.finished_at,
        results=results,
    )


def _terminated(task: Task, i: int, cs: ContainerStatus, pod: Pod) -> StepStatus:
    t = cs.state.terminated
    assert t is not None
    if (state := decode_state(t.message)) is not None:
        return _from_state(task, i, state)
    step = task.spec.steps[i]
    size = len((t.message or "").encode())
    budget = _message_budget(pod)
    reason = STEP_REASON_UNREADABLE
    message: str | None = "the agent left no readable state"
    if step.results:
        reason = STEP_REASON_RESULTS
        message = (
            f"the step's state (with its results) is {size}+ bytes, cut by the kubelet: "
            f"it keeps {budget} bytes of each termination message in this pod (12 KiB "
            f"shared by {len(pod.spec.init_containers) + len(pod.spec.containers)} "
            "containers); make the results smaller or use fewer steps"
        )
    elif t.reason == "OOMKilled":
        reason, message = "OOMKilled", None  # the agent itself was killed
    return StepStatus(
        name=step.name,
        state=STEP_TERMINATED,
        exit_code=t.exit_code,
        reason=reason,
        message=message,
        started_at=kubelet_time(t.started_at),
        finished_at=kubelet_time(t.finished_at),
    )


def _hands_on(prev: StepStatus) -> bool:
    """Whether the step after ``prev`` runs its command now: ``prev`` finished and did not
    abort (after a failure with stopAndFail, or a skip, the next agent skips at once)."""
    if prev.state != STEP_TERMINATED:
        return False
    if prev.reason == STEP_REASON_CONTINUED:
        return True
    return prev.exit_code == 0 and prev.reason not in (STEP_REASON_RESULTS, STEP_REASON_TIMED_OUT)


def agent_step_statuses(task: Task, pod: Pod) -> list[StepStatus]:
    by_name = {cs.name: cs for cs in pod.status.container_statuses}
    install = next(
        (cs for cs in pod.status.init_container_statuses if cs.name == INSTALL_CONTAINER), None
    )
    installed = (
        install is not None
        and install.state.terminated is not None
        and install.state.terminated.exit_code == 0
    )
    out: list[StepStatus] = []
    for i, step in enumerate(task.spec.steps):
        cs = by_name.get(step.name)
        if not installed:
            w = install.state.waiting if install is not None else None
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_WAITING,
                    reason=(w.reason or None) if w else None,
                    message=f"agent image: {w.message}" if w and w.message else None,
                )
            )
        elif cs is not None and cs.state.terminated is not None:
            out.append(_terminated(task, i, cs, pod))
        elif cs is not None and cs.state.running is not None:
            prev = out[i - 1] if i else None
            if prev is None or _hands_on(prev):
                started = prev.finished_at if prev is not None and prev.finished_at else None
                out.append(
                    StepStatus(
                        name=step.name,
                        state=STEP_RUNNING,
                        started_at=started or kubelet_time(cs.state.running.started_at),
                    )
                )
            else:
                out.append(
                    StepStatus(
                        name=step.name,
                        state=STEP_WAITING,
                        reason=STEP_REASON_WAITING,
                        message=f"step {prev.name} has not finished",
                    )
                )
        else:
            w = cs.state.waiting if cs is not None else None
            out.append(
                StepStatus(
                    name=step.name,
                    state=STEP_WAITING,
                    reason=(w.reason or None) if w else None,
                    message=(w.message or None) if w else None,
                )
            )
    return out
