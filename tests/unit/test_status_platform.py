"""A pull refused because the image's index has no entry for the node's platform ends the
Task at once, naming the wanted platform and the published ones (status/_platform.py)."""

from __future__ import annotations

import pytest

from taskflow.api.task import INSTALL_CONTAINER, Condition, TaskStatus
from taskflow.status import compute_status
from taskflow.status._platform import no_platform_match, platform_mismatch
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
