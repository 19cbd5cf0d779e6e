"""Condition reasons a TaskStatus carries, and the kubelet waiting reasons that lead to them."""

from __future__ import annotations

from typing import Final

# --- failure reasons ---
STEP_FAILED: Final = "StepFailed"
OOM_KILLED: Final = "OOMKilled"
IMAGE_PULL_FAILED: Final = "ImagePullFailed"
CONTAINER_CONFIG_ERROR: Final = "ContainerConfigError"
EVICTED: Final = "Evicted"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
POD_FAILED: Final = "PodFailed"
POD_DELETED: Final = "PodDeleted"
INVALID_POD_SPEC: Final = "InvalidPodSpec"
INVALID_SPEC: Final = "InvalidSpec"
TIMED_OUT: Final = "TimedOut"
#: executor agent: a step ran past its own timeout
STEP_TIMEOUT: Final = "StepTimeout"
#: executor agent: a step's results do not fit its termination message
RESULTS_TOO_LARGE: Final = "ResultsTooLarge"
#: executor agent: a step without command needs its image's ENTRYPOINT/CMD (not read yet)
IMAGE_LOOKUP_FAILED: Final = "ImageLookupFailed"
#: executor agent: a step's state (its termination message) disagrees with what the kubelet
#: saw (its container's exit code, the state's name); the kubelet wins
STEP_STATE_MISMATCH: Final = "StepStateMismatch"
#: executor agent: a step's container ended without any state (its agent was killed: SIGKILL,
#: a failed write); the kubelet's reason and exit code say what is known
AGENT_DIED: Final = "AgentDied"
#: executor agent: a step's container ended with a termination message that is not a state
#: (cut by the kubelet: too many containers in the pod; or written by something else)
STATE_UNREADABLE: Final = "StateUnreadable"
#: executor agent: the init container that installs the agent failed (it cannot start, or
#: its image cannot be pulled)
AGENT_INSTALL_FAILED: Final = "AgentInstallFailed"
#: the pod's name is held by a pod that is not this Task's and is not going away (a 409 on
#: create); Pending while the Task waits for the name, Failure once it gave up
POD_NAME_TAKEN: Final = "PodNameTaken"
#: the pod's name is held by a pod that is going away (being deleted, or its Task is gone);
#: Pending while the Task waits for it, Failure once it gave up
WAITING_FOR_OLD_POD: Final = "WaitingForOldPod"
#: a sidecar (spec.sidecars) never started: its image cannot be pulled, its container
#: cannot be created, or it crash-loops before its startupProbe passes
SIDECAR_FAILED: Final = "SidecarFailed"
#: the Task needs what this API server lacks (spec.sidecars before Kubernetes 1.29)
UNSUPPORTED: Final = "Unsupported"
#: reasons of a Task waiting for its pod's name (see status/_blocked.py)
NAME_WAIT_REASONS: Final = frozenset({POD_NAME_TAKEN, WAITING_FOR_OLD_POD})
FAILURE_REASONS: Final = (
    STEP_FAILED,
    OOM_KILLED,
    IMAGE_PULL_FAILED,
    CONTAINER_CONFIG_ERROR,
    EVICTED,
    DEADLINE_EXCEEDED,
    POD_FAILED,
    POD_DELETED,
    INVALID_POD_SPEC,
    INVALID_SPEC,
    TIMED_OUT,
    STEP_TIMEOUT,
    RESULTS_TOO_LARGE,
    IMAGE_LOOKUP_FAILED,
    STEP_STATE_MISMATCH,
    AGENT_DIED,
    STATE_UNREADABLE,
    AGENT_INSTALL_FAILED,
    POD_NAME_TAKEN,
    WAITING_FOR_OLD_POD,
    SIDECAR_FAILED,
    UNSUPPORTED,
)
#: failures a new attempt may cure (spec.retries); the rest would fail the same way again,
#: or were decided by the user (a timeout); a Task gives up waiting for its pod's name only
#: at its timeout (or the cap), where a timeout never retries either. A state that disagrees
#: with the kubelet is a step forging its outcome, a state cut by the kubelet is the pod's
#: shape, an agent that cannot be installed is the agent image, an API server without native
#: sidecars stays without them: each would fail again. (A sidecar that did not start may on
#: a new pod, as a step's image pull may.)
NEVER_RETRIED: Final = (
    INVALID_SPEC,
    INVALID_POD_SPEC,
    IMAGE_LOOKUP_FAILED,
    RESULTS_TOO_LARGE,
    STEP_STATE_MISMATCH,
    STATE_UNREADABLE,
    AGENT_INSTALL_FAILED,
    POD_NAME_TAKEN,
    WAITING_FOR_OLD_POD,
    UNSUPPORTED,
)
RETRYABLE_REASONS: Final = frozenset(FAILURE_REASONS) - {TIMED_OUT, *NEVER_RETRIED}

# --- other condition reasons ---
REASON_PENDING: Final = "Pending"
REASON_RUNNING: Final = "Running"
REASON_SUCCEEDED: Final = "Succeeded"
#: condition reason of a Cancelled Task
REASON_CANCELLED: Final = "Cancelled"
#: a cancel or timeout asked the pod to stop; the kubelet has not reported it stopped yet
REASON_STOPPING: Final = "Stopping"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_IMAGE_PULL_BACKOFF: Final = "ImagePullBackOff"
REASON_CREATE_CONTAINER_ERROR: Final = "CreateContainerConfigError"
#: the API server refused the pod for now (403: quota, admission policy, permissions)
REASON_FAILED_CREATE: Final = "FailedCreate"
#: condition reasons of a Pending/Running Task that point at a problem (worth an event)
PROBLEM_REASONS: Final = frozenset(
    {
        REASON_UNSCHEDULABLE,
        REASON_IMAGE_PULL_BACKOFF,
        REASON_CREATE_CONTAINER_ERROR,
        REASON_FAILED_CREATE,
        *NAME_WAIT_REASONS,
    }
)

# kubelet waiting reasons
PULL_RETRY: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
PULL_FATAL: Final = frozenset({"InvalidImageName", "ErrImageNeverPull"})
CONFIG_RETRY: Final = frozenset({"CreateContainerConfigError", "CreateContainerError"})
#: a container the kubelet keeps restarting (a sidecar that never started fails on it)
CRASH_LOOP: Final = "CrashLoopBackOff"
EVICTION_DISRUPTIONS: Final = frozenset(
    {
        "EvictionByEvictionAPI",
        "PreemptionByScheduler",
        "DeletionByTaintManager",
        "TerminationByKubelet",
    }
)
