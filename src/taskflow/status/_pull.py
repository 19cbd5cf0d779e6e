"""Pulls that no retry can cure, so the Task fails at once instead of after
``--image-pull-timeout``. The runtime says why in the pull error the kubelet passes on
(``ErrImagePull``, and in the ``ImagePullBackOff`` that follows); two cases are final:

* The image's index has no entry for the node's platform: containerd ``failed to pull and
  unpack image "REF": no match for platform in manifest: not found``
  (``images.LimitManifests``), CRI-O ``no image found in image index for architecture
  arm64``. The message says what the kubelet's does not: which platform was wanted and which
  ones taskflow's agent image has (an exec-format error never happens: the runtime refuses
  before anything runs). The pod does not carry the node's architecture, so the platform
  named is the Task's ``nodeSelector`` ``kubernetes.io/arch`` when it pins one, else the
  node's label by name.
* The registry has no such image: the CRI's gRPC status ``code = NotFound`` (containerd
  ``failed to resolve reference "REF": REF: not found``, from the registry's 404). A
  registry that hides a private image from anonymous clients answers 401/403 instead
  (``code = Unknown``), which waits like a network error does: credentials or the network
  may come back, a missing tag rarely does within the timeout. CRI-O reports a missing
  manifest as ``code = Unknown`` (``manifest unknown``), so on CRI-O it waits too.
"""

from __future__ import annotations

import re
from typing import Final

from taskflow.api.pod import Pod
from taskflow.api.task import Task

ARCH_LABEL: Final = "kubernetes.io/arch"
OS_LABEL: Final = "kubernetes.io/os"
#: what the runtimes say when an index has no entry for the node (lower case)
NO_MATCH: Final = (
    "no match for platform in manifest",  # containerd 1.6-2.x
    "no image found in image index for architecture",  # CRI-O, podman (containers/image)
    "no image found in manifest list for architecture",
)
#: the platforms of taskflow's published images (``nox -s images``; README, chart values)
PUBLISHED: Final = ("linux/amd64", "linux/arm64")
#: the agent's install container's problem, as status/_agent.py prefixes it
AGENT_PREFIX: Final = "agent image: "
#: the gRPC status a CRI runtime gives a pull whose image the registry does not have; the
#: platform mismatch carries it too (containerd), so it is told apart first
GRPC_NOT_FOUND: Final = "code = NotFound"
_REF = re.compile(r'image "([^"]+)"')


def no_platform_match(message: str | None) -> bool:
    text = (message or "").lower()
    return any(needle in text for needle in NO_MATCH)


def image_not_found(message: str | None) -> bool:
    return GRPC_NOT_FOUND in (message or "") and not no_platform_match(message)


def pull_refused(task: Task, pod: Pod, message: str | None, image: str) -> str | None:
    """The Task's failure message (without the step) when a step's pull error is final, for
    ``image`` (the step's or the agent's); None while a retry may still pull it."""
    if image_not_found(message):
        return (
            f"the registry has no image {_ref(message) or image!r} (or hides it without "
            "credentials: see imagePullSecrets)"
        )
    return platform_mismatch(task, pod, message)


def _ref(message: str | None) -> str | None:
    """The reference the runtime tried, as it names it (``docker.io/library/x:1``): in the
    kubelet's back-off form the one after the gRPC status, not the spec's short one before."""
    raw = (message or "").removeprefix(AGENT_PREFIX)
    found = _REF.search(raw, max(raw.find("rpc error:"), 0))
    return found.group(1) if found else None


def wanted_platform(task: Task) -> str | None:
    """The platform the Task pins with its nodeSelector, e.g. ``linux/arm64``."""
    selector = task.spec.pod_template.node_selector if task.spec.pod_template else {}
    arch = selector.get(ARCH_LABEL)
    return f"{selector.get(OS_LABEL, 'linux')}/{arch}" if arch else None


def platform_mismatch(task: Task, pod: Pod, message: str | None) -> str | None:
    """The Task's failure message when a step's pull error says the image has no entry for
    the node's platform; None for any other pull problem."""
    if message is None or not no_platform_match(message):
        return None
    agent = message.startswith(AGENT_PREFIX)
    raw = message.removeprefix(AGENT_PREFIX).strip()
    ref = repr(found) if (found := _ref(raw)) else ""
    node = f"node {pod.spec.node_name}" if pod.spec.node_name else "the node"
    wanted = wanted_platform(task)
    platform = wanted or f"its {ARCH_LABEL} label's"
    what = " ".join(x for x in ("the agent image" if agent else "image", ref) if x)
    has = (
        f"taskflow's agent image is published for {' and '.join(PUBLISHED)}"
        if agent
        else "the image's index lists the platforms it has"
    )
    return f"{what} has no entry for the platform of {node} ({platform}); {has} ({raw})"
