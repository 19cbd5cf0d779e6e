"""The kubelet's termination-message budget (pure; Kubernetes v1.34).

Two cuts, both in the kubelet:

* ``pkg/kubelet/kuberuntime/kuberuntime_container.go`` (``getTerminationMessage``) reads at
  most the last ``MaxContainerTerminationMessageLength`` (4096) bytes of a container's
  termination-message file;
* ``pkg/kubelet/status/status_manager.go`` (``normalizeStatus``, run on every status update)
  keeps the first ``MaxPodTerminationMessageLogLength // n`` (12288 // n) bytes of each
  container's message, n = ``len(spec.containers) + len(spec.initContainers) +
  len(spec.ephemeralContainers)`` of the pod *at that update*.

So an ephemeral container added later (``kubectl debug``) shrinks every container's budget,
messages of containers that finished long before included: the kubelet re-reads them on each
sync. The agent pod is rendered with room for :data:`EPHEMERAL_HEADROOM` of them
(:func:`taskflow.render.agent_pod`); status code reads the budget of the pod as it is
(:func:`pod_message_budget`).
"""

from __future__ import annotations

from typing import Final

from taskflow.api.pod import Pod

#: ``MaxPodTerminationMessageLogLength`` (pkg/kubelet/container/runtime.go)
POD_MESSAGE_BYTES: Final = 12 * 1024
#: ``MaxContainerTerminationMessageLength`` (pkg/kubelet/container/runtime.go)
CONTAINER_MESSAGE_BYTES: Final = 4 * 1024
#: Ephemeral containers an agent pod's budget leaves room for: one ``kubectl debug`` session
#: never cuts a step's state; a second one can (status then sees the cut).
EPHEMERAL_HEADROOM: Final = 1


def message_budget(containers: int, init: int = 0, ephemeral: int = 0) -> int:
    """Bytes of a container's termination message that reach the pod's status, for a pod
    with that many regular, init and ephemeral containers."""
    n = containers + init + ephemeral
    per_container = POD_MESSAGE_BYTES // n if n > 0 else POD_MESSAGE_BYTES
    return min(CONTAINER_MESSAGE_BYTES, per_container)


def pod_message_budget(pod: Pod) -> int:
    """:func:`message_budget` of ``pod`` as it is now (its ephemeral containers included)."""
    s = pod.spec
    return message_budget(len(s.containers), len(s.init_containers), len(s.ephemeral_containers))
