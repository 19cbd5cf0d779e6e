"""The Task's status: what the operator observed (``status``), its words and step states.

The operator writes it (:mod:`taskflow.status` computes it); the CRD's status rules keep a
finished Task's status from changing again.
"""

# gc=False: plain data, never in a reference cycle (see taskflow.api.meta).

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from taskflow.api._fields import _datetime, _doc, _rule, _rules

# --- status words (the STATUS column keeps the seed's words) ---
PENDING: Final = "Pending"
RUNNING: Final = "Running"
SUCCESSFUL: Final = "Successful"
FAILURE: Final = "Failure"
CANCELLED: Final = "Cancelled"
STATUS_WORDS: Final = (PENDING, RUNNING, SUCCESSFUL, FAILURE, CANCELLED)
FINISHED: Final = frozenset({SUCCESSFUL, FAILURE, CANCELLED})

# --- step states ---
STEP_WAITING: Final = "Waiting"
STEP_RUNNING: Final = "Running"
STEP_TERMINATED: Final = "Terminated"
STEP_NOT_RUN: Final = "NotRun"
STEP_STATES: Final = (STEP_WAITING, STEP_RUNNING, STEP_TERMINATED, STEP_NOT_RUN)

#: the states of status.sidecars[] (a sidecar is never NotRun: the kubelet starts it first)
SIDECAR_STATES: Final = (STEP_WAITING, STEP_RUNNING, STEP_TERMINATED)

CONDITION_SUCCEEDED: Final = "Succeeded"


class ResultValue(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A result's value (the file's text exactly as the step wrote it)."""

    name: str
    value: str


class StepStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """What happened to one step (``status.steps`` lists them in spec order)."""

    name: str
    state: Annotated[
        str,
        msgspec.Meta(
            extra_json_schema={"enum": list(STEP_STATES)},
            description="Waiting, Running, Terminated, or NotRun (an earlier step failed).",
        ),
    ]
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: Annotated[str, _datetime] | None = None
    finished_at: Annotated[str, _datetime] | None = None
    results: Annotated[
        list[ResultValue], _doc("The step's results (executor agent), as it wrote them.")
    ] = []
    attempts: (
        Annotated[
            int,
            _doc(
                "How many times the step's command ran (spec retries, executor agent); "
                "unset when once. exitCode, results and the rest are the last attempt's."
            ),
        ]
        | None
    ) = None
    retried_exit_codes: Annotated[
        list[int], _doc("The exit codes of the attempts before the last one, in order.")
    ] = []


class SidecarStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A sidecar as the kubelet last reported it (``status.sidecars``, in spec order)."""

    name: str
    state: Annotated[
        str,
        msgspec.Meta(
            extra_json_schema={"enum": list(SIDECAR_STATES)},
            description="Waiting, Running or Terminated.",
        ),
    ]
    ready: Annotated[bool, _doc("Its readinessProbe passes (or it runs, without one).")] = False
    restarts: Annotated[int, _doc("How often the kubelet restarted it.")] = 0
    exit_code: Annotated[int, _doc("When terminated: its exit code.")] | None = None
    reason: Annotated[str, _doc("When waiting or terminated: the kubelet's reason.")] | None = None
    message: str | None = None


class Condition(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A condition; taskflow sets ``Succeeded`` (Unknown while running, then True/False)."""

    type: str
    status: Annotated[str, msgspec.Meta(extra_json_schema={"enum": ["True", "False", "Unknown"]})]
    reason: str | None = None
    message: str | None = None
    last_transition_time: Annotated[str, _datetime] | None = None


class AttemptStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """An earlier attempt of a Task with ``retries`` (``status.attempts``, oldest first)."""

    attempt: Annotated[int, _doc("1 for the first run, 2 for the first retry, ...")]
    pod_name: Annotated[str, _doc("The pod of that attempt (kept until the Task goes).")] | None = (
        None
    )
    reason: Annotated[str, _doc("Why the attempt failed, e.g. StepFailed.")] | None = None
    message: str | None = None
    start_time: Annotated[str, _datetime] | None = None
    completion_time: Annotated[str, _datetime] | None = None
    steps: Annotated[list[StepStatus], _doc("The steps of that attempt, in spec order.")] = []


FINAL_STATUS_MESSAGE: Final = (
    "a finished Task's status cannot change: Successful, Failure and Cancelled are final"
)
_FINAL_WORDS: Final = "[" + ", ".join(f"'{w}'" for w in (SUCCESSFUL, FAILURE, CANCELLED)) + "]"
#: Another writer (a script, a second operator) cannot reopen or flip a finished Task.
STATUS_RULES: Final = _rules(
    _rule(
        f"!has(oldSelf.status) || !(oldSelf.status in {_FINAL_WORDS}) || "
        "(has(self.status) && self.status == oldSelf.status)",
        FINAL_STATUS_MESSAGE,
    )
)


class TaskStatus(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """Observed state of a Task. Never changes again once ``status`` is Successful, Failure
    or Cancelled."""

    status: (
        Annotated[
            str,
            msgspec.Meta(
                extra_json_schema={"enum": list(STATUS_WORDS)},
                description="Pending, Running, Successful, Failure or Cancelled.",
            ),
        ]
        | None
    ) = None
    start_at: (
        Annotated[str, _doc("When the first step started, 'YYYY-MM-DD HH:MM:SS' UTC.")] | None
    ) = None
    duration: (
        Annotated[
            str, _doc("From the first step's start to the end, e.g. '1m5s'; set when finished.")
        ]
        | None
    ) = None
    start_time: Annotated[str, _datetime, _doc("When the first step started.")] | None = None
    completion_time: Annotated[str, _datetime, _doc("When the Task finished.")] | None = None
    pod_name: Annotated[str, _doc("The pod running the steps.")] | None = None
    progress: (
        Annotated[
            str,
            _doc(
                "'k/n': k of the n steps have started (while Running, step k is the one "
                "running; on Failure, usually the one that failed)."
            ),
        ]
        | None
    ) = None
    steps: Annotated[list[StepStatus], _doc("One entry per step, in spec order.")] = []
    sidecars: Annotated[
        list[SidecarStatus], _doc("One entry per sidecar (spec.sidecars), in spec order.")
    ] = []
    conditions: Annotated[
        list[Condition],
        _doc("Condition 'Succeeded': Unknown while pending or running, then True or False."),
    ] = []
    observed_generation: (
        Annotated[int, _doc("The metadata.generation this status was computed for.")] | None
    ) = None
    attempt: (
        Annotated[int, _doc("Which attempt this status describes (1 = the first run).")] | None
    ) = None
    attempts: Annotated[
        list[AttemptStatus], _doc("Earlier attempts (spec.retries), oldest first.")
    ] = []

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def condition(self, type_: str = CONDITION_SUCCEEDED) -> Condition | None:
        for c in self.conditions:
            if c.type == type_:
                return c
        return None
