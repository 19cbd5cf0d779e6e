"""A pull that no retry can cure ends the Task at once (status/_pull.py): the image's index
has no entry for the node's platform (naming the wanted platform and the published ones), or
the registry has no such image (the CRI's ``code = NotFound``). Any other pull problem waits
out the pull timeout."""

from __future__ import annotations

import pytest

from taskflow.api.pod import Pod
from taskflow.api.task import INSTALL_CONTAINER, Task
from taskflow.api.task_status import Condition, TaskStatus
from taskflow.status import compute_status
from taskflow.status._pull import image_not_found, no_platform_match, platform_mismatch
from tests.unit.builders import SETTINGS, at, pod, step, task, waiting
from tests.unit.test_status_agent import ABC, agent_pod

REF = "127.0.0.1:35000/taskflow/agent:0.1.0-abc"
# What containerd 1.6/1.7 (images.LimitManifests) says through the kubelet.
CONTAINERD = (
    f'failed to pull and unpack image "{REF}": no match for platform in manifest: not found'
)
KUBELET = f"rpc error: code = NotFound desc = {CONTAINERD}"
PINNED = {"podTemplate": {"nodeSelector": {"kubernetes.io/arch": "arm64"}}}


def _cond(st: TaskStatus) -> Condition:
    cond = st.condition()
    assert cond is not None
    return cond


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (KUBELET, True),
        (f'Back-off pulling image "{REF}": ErrImagePull: {KUBELET}', True),
        ("choosing image instance: no image found in image index for architecture arm64", True),
        ("no image found in manifest list for architecture s390x, variant , OS linux", True),
        (f'Back-off pulling image "{REF}"', False),  # the kubelet's short form says nothing
        ("manifest unknown", False),
        (None, False),
    ],
)
def test_what_counts_as_no_entry_for_the_platform(message: str | None, match: bool) -> None:
    assert no_platform_match(message) is match


def test_the_agent_image_without_this_platform_fails_the_task_at_once() -> None:
    t = ABC
    install = waiting(INSTALL_CONTAINER, "ErrImagePull", KUBELET)
    st = compute_status(
        t, agent_pod(t, install, [waiting(n, "PodInitializing") for n in "abc"]), now=at(5),
        settings=SETTINGS,
    )  # fmt: skip
    cond = _cond(st)
    assert (st.status, cond.reason) == ("Failure", "ImagePullFailed")
    assert cond.message == (
        f"step a (1/3): the agent image {REF!r} has no entry for the platform of node node-1 "
        "(its kubernetes.io/arch label's); taskflow's agent image is published for "
        f"linux/amd64 and linux/arm64 ({KUBELET})"
    )
    assert "exec format error" not in cond.message


def test_a_pinned_task_names_the_platform_it_asked_for() -> None:
    t = task(step("a", command=["make"]), executor="agent", **PINNED)
    install = waiting(INSTALL_CONTAINER, "ImagePullBackOff", f"Back-off pulling image: {KUBELET}")
    message = platform_mismatch(t, agent_pod(t, install, []), "agent image: " + KUBELET)
    assert message is not None
    assert "(linux/arm64)" in message


def test_a_step_image_without_this_platform_names_that_image() -> None:
    t = task(step("a", image="example/amd64-only:1"), executor="kubelet")
    other = KUBELET.replace(REF, "example/amd64-only:1")
    st = compute_status(
        t, pod(t, main=[waiting("a", "ErrImagePull", other)]), now=at(5), settings=SETTINGS
    )
    assert _cond(st).reason == "ImagePullFailed"
    assert (_cond(st).message or "").startswith(
        "step a (1/1): image 'example/amd64-only:1' has no entry for the platform of node node-1"
    )


def test_other_pull_errors_still_retry_until_the_pull_timeout() -> None:
    t = task(step("a", image="example/x:1"), executor="kubelet")
    st = compute_status(
        t,
        pod(t, main=[waiting("a", "ErrImagePull", "manifest unknown")]),
        now=at(5),
        settings=SETTINGS,
    )
    assert (st.status, _cond(st).reason) == ("Pending", "ImagePullBackOff")


# What the kubelet passes on for an image the registry does not have (containerd 1.7/2.x:
# the registry's 404 on the manifest becomes gRPC NotFound). The kubelet shows the pulled
# reference as the runtime normalized it.
MISSING = "docker.io/library/no-such-image:1"
NOT_FOUND = (
    f'rpc error: code = NotFound desc = failed to pull and unpack image "{MISSING}": failed '
    f'to resolve reference "{MISSING}": {MISSING}: not found'
)
LOCAL = "127.0.0.1:35000/team/tool:2"
NOT_FOUND_LOCAL = (
    f'rpc error: code = NotFound desc = failed to pull and unpack image "{LOCAL}": failed to '
    f'resolve reference "{LOCAL}": {LOCAL}: not found'
)
# Private images and network trouble: gRPC Unknown, a retry (or a fixed secret) may pull them.
UNAUTHORIZED = (
    f'rpc error: code = Unknown desc = failed to pull and unpack image "{LOCAL}": failed to '
    f'resolve reference "{LOCAL}": failed to authorize: failed to fetch anonymous token: '
    "unexpected status from GET request to https://127.0.0.1:35000/token?scope=repository"
    "%3Ateam%2Ftool%3Apull: 401 Unauthorized"
)
FORBIDDEN = (
    f'rpc error: code = Unknown desc = failed to pull and unpack image "{LOCAL}": failed to '
    f'resolve reference "{LOCAL}": unexpected status from HEAD request to '
    "https://127.0.0.1:35000/v2/team/tool/manifests/2: 403 Forbidden"
)
HUB_DENIED = (
    f'rpc error: code = Unknown desc = failed to pull and unpack image "{MISSING}": failed to '
    f'resolve reference "{MISSING}": pull access denied, repository does not exist or may '
    "require authorization: server message: insufficient_scope: authorization failed"
)
REFUSED = (
    f'rpc error: code = Unknown desc = failed to pull and unpack image "{LOCAL}": failed to '
    f'resolve reference "{LOCAL}": failed to do request: Head '
    '"https://127.0.0.1:35000/v2/team/tool/manifests/2": dial tcp 127.0.0.1:35000: connect: '
    "connection refused"
)
# CRI-O (containers/image) says a missing manifest with gRPC Unknown: it waits, as before.
CRIO_MISSING = (
    f"rpc error: code = Unknown desc = reading manifest 2 in {LOCAL.rsplit(':', 1)[0]}: "
    "manifest unknown"
)


@pytest.mark.parametrize(
    ("message", "missing"),
    [
        (NOT_FOUND, True),
        (NOT_FOUND_LOCAL, True),
        (f'Back-off pulling image "no-such-image:1": ErrImagePull: {NOT_FOUND}', True),
        ("agent image: " + NOT_FOUND_LOCAL, True),
        (KUBELET, False),  # NotFound too, but the image is there without this platform
        (UNAUTHORIZED, False),
        (FORBIDDEN, False),
        (HUB_DENIED, False),
        (REFUSED, False),
        (CRIO_MISSING, False),
        ('Back-off pulling image "no-such-image:1"', False),
        (None, False),
    ],
)
def test_what_counts_as_an_image_the_registry_does_not_have(
    message: str | None, missing: bool
) -> None:
    assert image_not_found(message) is missing


HIDDEN = "(or hides it without credentials: see imagePullSecrets)"


def _pulling(executor: str, reason: str, message: str) -> tuple[Task, Pod]:
    """A one-step Task whose only pull (its step's, or the agent's install) fails so."""
    if executor == "agent":
        t = task(step("a", command=["make"]), executor="agent")
        return t, agent_pod(t, waiting(INSTALL_CONTAINER, reason, message), [])
    t = task(step("a", image=LOCAL), executor="kubelet")
    return t, pod(t, main=[waiting("a", reason, message)])


@pytest.mark.parametrize(
    ("executor", "reason", "message", "expected"),
    [
        (
            "kubelet",
            "ErrImagePull",
            NOT_FOUND,
            f"step a (1/1): the registry has no image {MISSING!r} {HIDDEN}",
        ),
        (
            "kubelet",
            "ImagePullBackOff",
            f'Back-off pulling image "no-such-image:1": ErrImagePull: {NOT_FOUND}',
            f"step a (1/1): the registry has no image {MISSING!r} {HIDDEN}",
        ),
        (
            "kubelet",
            "ErrImagePull",
            NOT_FOUND_LOCAL,
            f"step a (1/1): the registry has no image {LOCAL!r} {HIDDEN}",
        ),
        (  # the agent's install container: its steps wait with its pull error, prefixed
            "agent",
            "ErrImagePull",
            NOT_FOUND_LOCAL,
            f"step a (1/1): the registry has no image {LOCAL!r} {HIDDEN}",
        ),
        (  # the platform mismatch is NotFound too and keeps its own message
            "kubelet",
            "ErrImagePull",
            KUBELET,
            f"step a (1/1): image {REF!r} has no entry for the platform of node node-1",
        ),
    ],
)
def test_an_image_the_registry_does_not_have_fails_at_once(
    executor: str, reason: str, message: str, expected: str
) -> None:
    st = compute_status(*_pulling(executor, reason, message), now=at(5), settings=SETTINGS)
    cond = _cond(st)
    # a missing agent image is the operator's --agent-image: never retried
    want = "AgentInstallFailed" if executor == "agent" else "ImagePullFailed"
    assert (st.status, cond.reason) == ("Failure", want)
    assert (cond.message or "").startswith(expected)
    assert st.completion_time is not None


@pytest.mark.parametrize("message", [UNAUTHORIZED, FORBIDDEN, HUB_DENIED, REFUSED, CRIO_MISSING])
@pytest.mark.parametrize("executor", ["kubelet", "agent"])
def test_auth_and_network_errors_wait_out_the_pull_timeout(executor: str, message: str) -> None:
    st = compute_status(*_pulling(executor, "ErrImagePull", message), now=at(5), settings=SETTINGS)
    assert (st.status, _cond(st).reason) == ("Pending", "ImagePullBackOff")
    assert "the Task fails if this lasts 5m0s" in (_cond(st).message or "")
