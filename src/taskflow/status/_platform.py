"""A pull that cannot succeed on this node: the image's index has no entry for its platform.

The runtime says so in the pull error the kubelet passes on (``ErrImagePull``, and in the
``ImagePullBackOff`` that follows): containerd ``failed to pull and unpack image "REF": no
match for platform in manifest: not found`` (``images.LimitManifests``), CRI-O ``no image
found in image index for architecture arm64``. Retrying cannot help, so the Task fails at
once, and the message says what the kubelet's does not: which platform was wanted and
which ones taskflow's agent image has (an exec-format error never happens: the runtime
refuses before anything runs).

The pod does not carry the node's architecture, so the platform named is the Task's
``nodeSelector`` ``kubernetes.io/arch`` when it pins one, else the node's label by name.
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
_REF = re.compile(r'image "([^"]+)"')


def no_platform_match(message: str | None) -> bool:
    text = (message or "").lower()
    return any(needle in text for needle in NO_MATCH)


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
    found = _REF.search(raw)
    ref = repr(found.group(1)) if found else ""
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
