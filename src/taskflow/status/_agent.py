"""The step table of an agent pod (docs/agent.md): each step's outcome is the agent's state
JSON in its container's termination message, checked against what the kubelet saw.

* terminated, state readable: the agent's exit code, ms timestamps, results and error; a
  skipped step (an earlier one failed, or the pod was stopped first) is ``NotRun``; a step
  that timed out has reason ``TimedOut``; a failure with ``onError: continue`` has reason
  ``ContinuedOnError`` and does not fail the Task. A retried step (``retries``) is its last
  attempt, with ``attempts`` and the earlier attempts' ``retriedExitCodes``: one that
  succeeded on a retry succeeded.
* terminated, state readable but disagreeing with the kubelet (its ``name`` is not the
  container's, or the container's exit code is not the one the agent exits with for that
  state, docs/agent.md rule 8): a step process rewrote the termination message. The kubelet
  wins: the step failed (reason ``StepStateMismatch``), its results are dropped.
* terminated, state unreadable: the step failed, never silently succeeded (a cut state of an
  ``onError: continue`` failure or a timeout would read as a success). No message at all:
  the agent died (reason ``AgentDied``, or ``OOMKilled``), the kubelet's reason and exit
  code say how; so do the runtime's words (``StartError: exec format error``,
  ``ContainerStatusUnknown``) in place of a state. A message the kubelet cut (it keeps
  ``12288 // containers`` bytes of each,
  init, regular and ephemeral containers counted): ``ResultsTooLarge`` for a step that
  declares results, else ``StateUnreadable``; any other text: ``StateUnreadable``.
* running: the step is ``Running`` only once its command runs, i.e. once the previous step
  has a state that did not abort (for an unreadable one: its container exited 0, which the
  agent does only when the next step runs); before that its agent waits (``Waiting``,
  reason ``WaitingForPreviousStep``); after an abort it is about to skip (``Waiting``, then
  ``NotRun``).
* until the install container has succeeded, every step waits with its reason; an install
  container that ended non-zero fails the Task (:func:`install_failure`).
"""

from __future__ import annotations

from typing import Final

import msgspec

from taskflow.api.budget import pod_message_budget
from taskflow.api.pod import ContainerStateTerminated, ContainerStatus, Pod
from taskflow.api.task import INSTALL_CONTAINER, ON_ERROR_CONTINUE, Step, Task
from taskflow.api.task_status import (
    STEP_NOT_RUN,
    STEP_RUNNING,
    STEP_TERMINATED,
    STEP_WAITING,
    ResultValue,
    StepStatus,
)
from taskflow.labels import EXECUTOR_LABEL
from taskflow.status._clock import kubelet_time

# step reasons of the agent executor
STEP_REASON_TIMED_OUT: Final = "TimedOut"
STEP_REASON_CONTINUED: Final = "ContinuedOnError"
STEP_REASON_SKIPPED: Final = "Skipped"
STEP_REASON_WAITING: Final = "WaitingForPreviousStep"
STEP_REASON_RESULTS: Final = "ResultsTooLarge"
STEP_REASON_UNREADABLE: Final = "StateUnreadable"
STEP_REASON_MISMATCH: Final = "StepStateMismatch"
STEP_REASON_AGENT_DIED: Final = "AgentDied"
#: step reasons that fail the Task whatever the step's exit code says
FAILING_STEP_REASONS: Final = frozenset(
    {STEP_REASON_RESULTS, STEP_REASON_UNREADABLE, STEP_REASON_MISMATCH, STEP_REASON_AGENT_DIED}
)
#: what the agent's errors about result sizes say (docs/agent.md, rules 6 and 7)
RESULTS_SIZE_ERROR: Final = "a step's results must fit in"


class AgentResult(msgspec.Struct, frozen=True):
    name: str
    value: str


class AgentState(msgspec.Struct, frozen=True, rename="camel"):
    """The agent's state v1 (docs/agent.md "State (v1)"); ``attempts`` and
    ``retriedExitCodes`` only in the state of a step that was retried."""

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
    attempts: int = 1
    retried_exit_codes: list[int] = []


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


def message_budget(pod: Pod) -> int:
    """The bytes the kubelet keeps of each termination message in ``pod`` as it is now."""
    return pod_message_budget(pod)


def expected_exit(step: Step, state: AgentState) -> int:
    """The exit code the agent ends its container with for ``state`` (docs/agent.md rule 8)."""
    failed = state.exit_code != 0 or state.timed_out or state.error is not None
    if state.skipped or not failed or step.on_error == ON_ERROR_CONTINUE:
        return 0
    return state.exit_code or 1


def disagreement(step: Step, state: AgentState, exit_code: int) -> str | None:
    """What in ``state`` contradicts the kubelet (the container exited ``exit_code``)."""
    if state.name != step.name:
        return f"its state is step {state.name!r}'s"
    if exit_code == expected_exit(step, state):
        return None
    if state.skipped:
        said = "it was skipped"
    else:
        said = f"exit code {state.exit_code}"
        if step.on_error == ON_ERROR_CONTINUE and state.exit_code != 0:
            said += " with onError continue (its agent exits 0)"
    return f"its container exited {exit_code} but its state says {said}"


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
        attempts=state.attempts if state.attempts > 1 else None,
        retried_exit_codes=state.retried_exit_codes,
    )


def _terminated(task: Task, i: int, cs: ContainerStatus, pod: Pod) -> tuple[StepStatus, bool]:
    """The step's status, and whether its agent let the next step run."""
    t = cs.state.terminated
    assert t is not None
    step = task.spec.steps[i]
    if (state := decode_state(t.message)) is not None:
        problem = disagreement(step, state, t.exit_code)
        if problem is None:
            return _from_state(task, i, state), not state.abort
        failed = StepStatus(
            name=step.name,
            state=STEP_TERMINATED,
            exit_code=t.exit_code or state.exit_code or 1,
            reason=STEP_REASON_MISMATCH,
            message=problem,
            started_at=kubelet_time(t.started_at),
            finished_at=kubelet_time(t.finished_at),
        )
        # the state the next agent read may be forged too: the agent's exit code is not
        return failed, t.exit_code == 0
    reason, message = _unreadable(step, t, pod)
    status = StepStatus(
        name=step.name,
        state=STEP_TERMINATED,
        exit_code=t.exit_code or 1,
        reason=reason,
        message=message,
        started_at=kubelet_time(t.started_at),
        finished_at=kubelet_time(t.finished_at),
    )
    # the agent exits 0 only once its state is written and says the next step may run
    return status, t.exit_code == 0


def _unreadable(step: Step, t: ContainerStateTerminated, pod: Pod) -> tuple[str, str | None]:
    """Why a terminated step has no state: the step reason and message."""
    how = f"{t.reason or 'no reason given'}, exit code {t.exit_code}"
    if not t.message:
        if t.reason == "OOMKilled":
            return "OOMKilled", None  # the agent itself was killed
        return STEP_REASON_AGENT_DIED, (
            f"its container ended ({how}) without a state: the agent was killed or could not "
            "write it"
        )
    if t.reason not in (None, "Completed", "Error") and not t.message.startswith("{"):
        # the kubelet's or the runtime's own words (StartError, ContainerStatusUnknown):
        # the agent never ran, or was lost
        return STEP_REASON_AGENT_DIED, (
            f"its container ended ({how}: {_clip(t.message)}) without a state"
        )
    size = len(t.message.encode())
    budget = message_budget(pod)
    spec = pod.spec
    count = len(spec.init_containers) + len(spec.containers) + len(spec.ephemeral_containers)
    shared = f"12 KiB shared by {count} containers"
    # the kubelet cuts bytes; a cut inside a UTF-8 sequence comes back a little shorter
    if size + 3 >= budget:
        if step.results:
            return STEP_REASON_RESULTS, (
                f"the step's state (with its results) is {size}+ bytes, cut by the kubelet: "
                f"it keeps {budget} bytes of each termination message in this pod ({shared}); "
                "make the results smaller or use fewer steps"
            )
        return STEP_REASON_UNREADABLE, (
            f"its state could not be read ({how}): it is {size}+ bytes, cut by the kubelet, "
            f"which keeps {budget} bytes of each termination message in this pod ({shared}); "
            "use fewer steps or shorter step names and errors"
        )
    return STEP_REASON_UNREADABLE, (
        f"its state could not be read ({how}): its termination message is not an agent "
        f"state ({size} bytes)"
    )


def _clip(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def install_failure(pod: Pod) -> tuple[str, str] | None:
    """(kubelet reason, message) of an install container that ended without success."""
    install = _install_status(pod)
    t = install.state.terminated if install is not None else None
    if t is None or t.exit_code == 0:
        return None
    detail = (t.message or "").strip()
    return t.reason or "Error", f"exit code {t.exit_code}" + (f": {detail}" if detail else "")


def agent_image(pod: Pod) -> str | None:
    """The agent image, from the pod's install container."""
    c = next((c for c in pod.spec.init_containers if c.name == INSTALL_CONTAINER), None)
    return c.image if c is not None else None


def installing(pod: Pod) -> bool:
    """The install container has not succeeded (yet): the steps wait for it."""
    install = _install_status(pod)
    t = install.state.terminated if install is not None else None
    return t is None or t.exit_code != 0


def waiting_step(name: str, reason: str | None, message: str | None) -> StepStatus:
    """A step that has not started. The kubelet sends "" for a reason or message it does not
    set; the status leaves those out rather than print empty fields."""
    return StepStatus(name=name, state=STEP_WAITING, reason=reason or None, message=message or None)


def _install_status(pod: Pod) -> ContainerStatus | None:
    return next(
        (cs for cs in pod.status.init_container_statuses if cs.name == INSTALL_CONTAINER), None
    )


def agent_step_statuses(task: Task, pod: Pod) -> list[StepStatus]:
    by_name = {cs.name: cs for cs in pod.status.container_statuses}
    install = _install_status(pod)
    installed = not installing(pod)
    out: list[StepStatus] = []
    #: whether the previous step's agent let this one run its command
    hands_on = True
    for i, step in enumerate(task.spec.steps):
        cs = by_name.get(step.name)
        if not installed:
            w = install.state.waiting if install is not None else None
            out.append(
                waiting_step(
                    step.name,
                    w.reason if w else None,
                    f"agent image: {w.message}" if w and w.message else None,
                )
            )
        elif cs is not None and cs.state.terminated is not None:
            status, hands_on = _terminated(task, i, cs, pod)
            out.append(status)
            continue
        elif cs is not None and cs.state.running is not None:
            prev = out[i - 1] if i else None
            if prev is None or (prev.state == STEP_TERMINATED and hands_on):
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
                    waiting_step(
                        step.name, STEP_REASON_WAITING, f"step {prev.name} has not finished"
                    )
                )
        else:
            w = cs.state.waiting if cs is not None else None
            out.append(waiting_step(step.name, w.reason if w else None, w.message if w else None))
        hands_on = False  # this step has not finished: the next one cannot run yet
    return out
