"""Agent steps without ``command``: the image's ENTRYPOINT/CMD from the registry, handed to
render and plan as data (taskflow.oci.Resolved)."""

from __future__ import annotations

from typing import Any

import pytest

from taskflow.oci import ImageCommand, Resolved
from taskflow.reconcile import plan
from taskflow.render import ImageLookupError, lookups_needed, render_pod
from taskflow.settings import Settings
from tests.unit.builders import at, step, task

AGENT = Settings(default_executor="agent")
KUBELET = Settings(default_executor="kubelet")
BIN = "/taskflow/bin/taskflow-agent"
AMD = "linux/amd64"
ARM = "linux/arm64/v8"


def _argv(pod: dict[str, Any], name: str) -> list[str]:
    c = next(c for c in pod["spec"]["containers"] if c["name"] == name)
    cmd: list[str] = c["command"]
    assert cmd[0] == BIN
    assert "args" not in c
    return cmd


def _after_dashes(cmd: list[str]) -> list[str]:
    return cmd[cmd.index("--") + 1 :]


def test_lookups_needed() -> None:
    t = task(
        step("a", command=["x"]),
        step("b", "img:1"),
        step("c", "img:1", args=["y"]),
        step("d", "other", script="echo"),
        step("e", "third"),
    )
    assert lookups_needed(t, AGENT) == ("img:1", "third")
    assert lookups_needed(t, KUBELET) == ()  # the kubelet reads the image itself
    bad = task(step("a", "img"), step("a", "img"))  # duplicate names: never rendered
    assert lookups_needed(bad, AGENT) == ()


SAME = Resolved(
    platforms={AMD: ImageCommand(("/ep",), ("c1",)), ARM: ImageCommand(("/ep",), ("c1",))}
)
DIFF = Resolved(
    platforms={AMD: ImageCommand(("/amd",), ("c",)), ARM: ImageCommand((), ("/arm", "x"))}
)


@pytest.mark.parametrize(
    ("args", "resolved", "want"),
    [
        ([], SAME, ["--", "/ep", "c1"]),
        (["a1", "$(results.r.path)"], SAME, ["--", "/ep", "a1", "/taskflow/run/s/results/r"]),
        ([], DIFF, ["--arch", "amd64=2", "--arch", "arm64/v8=2", "--", "/amd", "c", "/arm", "x"]),
        (["z"], DIFF, ["--arch", "amd64=2", "--arch", "arm64/v8=1", "--", "/amd", "z", "z"]),
    ],
)
def test_render_uses_the_image_command(
    args: list[str], resolved: Resolved, want: list[str]
) -> None:
    t = task(step("s", "img:1", args=args, results=[{"name": "r"}]))
    cmd = _argv(render_pod(t, AGENT, 1, {"img:1": resolved}), "s")
    assert cmd[cmd.index("--termination-path") + 2 :] == want


@pytest.mark.parametrize(
    ("images", "match"),
    [
        ({}, "image img:1 has not been looked up"),
        (
            {"img:1": Resolved(error="image img:1: GET x: 401 Unauthorized: UNAUTHORIZED: no")},
            r"step s: image img:1: GET x: 401",
        ),
        (
            {"img:1": Resolved(platforms={AMD: ImageCommand()})},
            r"\(linux/amd64\) has neither ENTRYPOINT nor CMD",
        ),
        ({"img:1": Resolved()}, "no linux platform"),
    ],
)
def test_render_lookup_failures(images: dict[str, Resolved], match: str) -> None:
    with pytest.raises(ImageLookupError, match=match):
        render_pod(task(step("s", "img:1")), AGENT, 1, images)


def test_the_kubelet_executor_needs_no_lookup() -> None:
    pod = render_pod(task(step("b", args=["10"])), KUBELET)
    assert "command" not in pod["spec"]["containers"][0]


def test_plan_asks_for_lookups_before_creating_the_pod() -> None:
    t = task(step("a", command=["true"]), step("b", "img:1", args=["10"]))
    first = plan(t, None, now=at(0), settings=AGENT)
    assert first.lookup_images == ("img:1",)
    assert (first.create_pod, first.status, first.events) == (None, None, ())
    second = plan(t, None, now=at(0), settings=AGENT, images={"img:1": SAME})
    assert second.lookup_images == ()
    assert second.create_pod is not None
    assert _after_dashes(_argv(second.create_pod, "b")) == ["/ep", "10"]


def test_plan_ends_a_failed_lookup_image_lookup_failed() -> None:
    t = task(step("a", command=["true"]), step("b", "img:1"))
    failed = Resolved(
        error="image img:1: GET http://r/v2/img/manifests/1: 404 Not Found: "
        "MANIFEST_UNKNOWN: manifest unknown"
    )
    p = plan(t, None, now=at(0), settings=AGENT, images={"img:1": failed})
    assert p.create_pod is None
    assert p.status is not None
    cond = p.status.condition()
    assert cond is not None
    assert (p.status.status, cond.reason) == ("Failure", "ImageLookupFailed")
    assert cond.message == f"step b: {failed.error}"
    assert [e.reason for e in p.events] == ["Failed"]


def test_plan_asks_nothing_once_the_pod_exists_or_the_task_is_stopped() -> None:
    t = task(step("b", "img:1"), status={"podName": "demo-pod", "attempt": 1})
    assert plan(t, None, now=at(0), settings=AGENT).lookup_images == ()
    cancelled = task(step("b", "img:1"), cancel=True)
    assert plan(cancelled, None, now=at(0), settings=AGENT).lookup_images == ()
