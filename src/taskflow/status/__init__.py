"""Task + Pod -> TaskStatus (pure).

Status words (the STATUS column): ``Pending`` (no step has started), ``Running``,
``Successful``, ``Failure``, ``Cancelled``. A finished status never changes again.

``progress`` is ``k/n`` where k is the number of steps that have *started* (running or
finished): ``0/3`` before the first step starts, ``2/3`` while step 2 runs, ``3/3`` once the
Task succeeded, and on failure the position of the step that failed (or of the last step
that started).

Times come from the kubelet's container timestamps, never from the controller's clock:
``startTime``/``startAt`` are the first step's start (the pod's ``startTime`` until a step
has one), ``completionTime`` is the end of the last step that finished, and ``duration``
(Go style: ``31s``, ``1m5s``, ``1h2m3s``) is the difference, set only when the Task ends.
Only failures without any container timestamp (a pod deleted or an image never pulled) fall
back to ``now`` for ``completionTime``.

Failure reasons (condition ``Succeeded=False``; the message names the step):

============================  ====================================================
``StepFailed``                a step exited non-zero (the last step included)
``OOMKilled``                 a step was killed for exceeding its memory limit
``ImagePullFailed``           ``ErrImagePull``/``ImagePullBackOff`` for longer than
                              ``settings.image_pull_timeout``; ``InvalidImageName``,
                              ``ErrImageNeverPull``, an image the registry does not have
                              (gRPC ``NotFound``) and one without the node's platform at
                              once (:mod:`._pull`)
``ContainerConfigError``      ``CreateContainerConfigError``/``CreateContainerError`` for
                              longer than ``settings.config_error_timeout``
``Evicted``                   the pod was evicted (node pressure, eviction API, preemption)
``DeadlineExceeded``          ``spec.activeDeadlineSeconds`` passed
``PodFailed``                 the pod failed for any other reason (e.g. kubelet admission)
``PodDeleted``                the pod disappeared (or is being deleted) before the end
``InvalidPodSpec``            the API server rejected the pod (:func:`reconcile.rejected`)
``InvalidSpec``               the Task cannot be decoded (:func:`reconcile.undecodable`)
``TimedOut``                  ``spec.timeout`` (or the default) passed since creation
``StepTimeout``               (agent) a step ran past its own ``timeout``
``ResultsTooLarge``           (agent) a step's results do not fit its termination message
                              (4096 bytes; the kubelet's 12 KiB per pod, shared by the
                              pod's init, regular and ephemeral containers)
``ImageLookupFailed``         (agent) a step without ``command``: reading its image's
                              ENTRYPOINT/CMD from the registry failed
``StepStateMismatch``         (agent) a step's state disagrees with the kubelet (its
                              container's exit code, the state's name): the kubelet wins
``AgentDied``                 (agent) a step's container ended without a state (its agent
                              was killed, e.g. SIGKILL: exit code 137)
``StateUnreadable``           (agent) a step's termination message is not a state (cut by
                              the kubelet in a pod of many containers, or not the agent's)
``AgentInstallFailed``        (agent) the ``taskflow-install`` init container failed, or the
                              agent image cannot be pulled
``PodNameTaken``              a pod that is not this Task's held the pod's name until
                              the Task's timeout, or 1 h without one (:mod:`._name_wait`)
``WaitingForOldPod``          the same for a pod that was going away (being deleted, or
                              its Task is gone) but did not go
``SidecarFailed``             a sidecar never started: its image cannot be pulled (the
                              step rules above), its container cannot be created, or it
                              is in ``CrashLoopBackOff`` before it started (:mod:`._sidecars`)
``Unsupported``               ``spec.sidecars`` on an API server without native sidecars
                              (``settings.native_sidecars``; no pod is created)
============================  ====================================================

Sidecars (``spec.sidecars``) are reported in ``status.sidecars`` (state, ready, restarts)
from the pod's ``initContainerStatuses``, by name; steps never read their containers, and
the pod's phase is its regular containers' (the kubelet stops the sidecars at the end: exit
code 0, 137 or 143, never a failure). A sidecar that started and crashes later is only
restarted (``restarts``; a ``SidecarRestarted`` Warning Event, see :mod:`taskflow.reconcile`).

Retries (``spec.retries``) follow :data:`RETRYABLE_REASONS`; :data:`NEVER_RETRIED` (and a
timeout or a cancel) end the Task. A final status while the pod still runs comes with a
stop of the pod (``reconcile.Plan.stop_pod``), as a cancel's does; a failed attempt that
will be retried shows reason ``Stopping`` too until its pod has stopped (``reconcile``).

A Task with ``spec.cancel`` ends ``Cancelled`` (condition reason ``Cancelled``). Cancel and
timeout first ask the pod to stop (reason ``Stopping``, see :mod:`._stop`); the Task ends
once the pod has stopped, at once when there is no running pod.

An unschedulable pod stays ``Pending``; the condition carries reason ``Unschedulable`` and
the scheduler's message. A pod the API server refuses for now (403: a quota, an admission
policy) leaves the Task ``Pending`` with reason ``FailedCreate`` (:func:`refused_status`).
A pod name held by another pod leaves it ``Pending`` with reason ``PodNameTaken`` or
``WaitingForOldPod`` until the name frees or the wait's bound passes
(:func:`name_wait_status`).
"""

from __future__ import annotations

# The data flow, one module each: _steps reads the pod's container statuses into the step
# table, _outcome says what that means (word, reason, message), _compute writes the
# TaskStatus; _reasons and _clock are the constants and time formats they share.
from taskflow.status._clock import format_duration, format_start_at, format_time, parse_time
from taskflow.status._compute import (
    MAX_CONDITION_MESSAGE,
    Evaluation,
    compute_status,
    evaluate,
    invalid_status,
    refused_status,
)
from taskflow.status._name_wait import gave_up_waiting, name_wait_status
from taskflow.status._reasons import (
    AGENT_DIED,
    AGENT_INSTALL_FAILED,
    CONTAINER_CONFIG_ERROR,
    DEADLINE_EXCEEDED,
    EVICTED,
    FAILURE_REASONS,
    IMAGE_LOOKUP_FAILED,
    IMAGE_PULL_FAILED,
    INVALID_POD_SPEC,
    INVALID_SPEC,
    NAME_WAIT_REASONS,
    NEVER_RETRIED,
    OOM_KILLED,
    POD_DELETED,
    POD_FAILED,
    POD_NAME_TAKEN,
    PROBLEM_REASONS,
    REASON_CANCELLED,
    REASON_CREATE_CONTAINER_ERROR,
    REASON_FAILED_CREATE,
    REASON_IMAGE_PULL_BACKOFF,
    REASON_PENDING,
    REASON_RUNNING,
    REASON_STOPPING,
    REASON_SUCCEEDED,
    REASON_UNSCHEDULABLE,
    RESULTS_TOO_LARGE,
    RETRYABLE_REASONS,
    SIDECAR_FAILED,
    STATE_UNREADABLE,
    STEP_FAILED,
    STEP_STATE_MISMATCH,
    STEP_TIMEOUT,
    TIMED_OUT,
    UNSUPPORTED,
    WAITING_FOR_OLD_POD,
)
from taskflow.status._stop import (
    STOP_DEADLINE,
    Stop,
    current_attempt,
    deadline_of,
    needs_stop,
    stop_of,
    timeout_of,
)

__all__ = [
    "AGENT_DIED",
    "AGENT_INSTALL_FAILED",
    "CONTAINER_CONFIG_ERROR",
    "DEADLINE_EXCEEDED",
    "EVICTED",
    "FAILURE_REASONS",
    "IMAGE_LOOKUP_FAILED",
    "IMAGE_PULL_FAILED",
    "INVALID_POD_SPEC",
    "INVALID_SPEC",
    "MAX_CONDITION_MESSAGE",
    "NAME_WAIT_REASONS",
    "NEVER_RETRIED",
    "OOM_KILLED",
    "POD_DELETED",
    "POD_FAILED",
    "POD_NAME_TAKEN",
    "PROBLEM_REASONS",
    "REASON_CANCELLED",
    "REASON_CREATE_CONTAINER_ERROR",
    "REASON_FAILED_CREATE",
    "REASON_IMAGE_PULL_BACKOFF",
    "REASON_PENDING",
    "REASON_RUNNING",
    "REASON_STOPPING",
    "REASON_SUCCEEDED",
    "REASON_UNSCHEDULABLE",
    "RESULTS_TOO_LARGE",
    "RETRYABLE_REASONS",
    "SIDECAR_FAILED",
    "STATE_UNREADABLE",
    "STEP_FAILED",
    "STEP_STATE_MISMATCH",
    "STEP_TIMEOUT",
    "STOP_DEADLINE",
    "TIMED_OUT",
    "UNSUPPORTED",
    "WAITING_FOR_OLD_POD",
    "Evaluation",
    "Stop",
    "compute_status",
    "current_attempt",
    "deadline_of",
    "evaluate",
    "format_duration",
    "format_start_at",
    "format_time",
    "gave_up_waiting",
    "invalid_status",
    "name_wait_status",
    "needs_stop",
    "parse_time",
    "refused_status",
    "stop_of",
    "timeout_of",
]
