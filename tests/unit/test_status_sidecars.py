"""Status of pods with native sidecars (spec.sidecars), both executors: status.sidecars by
name, steps that never read sidecar containers, a pod that ends by its regular containers,
SidecarFailed for a sidecar that cannot start, restarts of one that did (and their Events),
and Unsupported without native sidecars."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from taskflow.api import Task, TaskStatus, decode_pod, decode_task
from taskflow.api.pod import Pod
from taskflow.api.task import INSTALL_CONTAINER
from taskflow.api.task_status import SidecarStatus
from taskflow.reconcile import EventSpec, plan, transition_events
from taskflow.render import render_pod
from taskflow.settings import Settings
from taskflow.status import compute_status, evaluate
from tests.unit.builders import at, running, step, task_dict, terminated, ts, waiting

SETTINGS = Settings(
    image_pull_timeout=300,
    config_error_timeout=120,
    default_timeout=0,
    agent_image="reg.local/agent:1",
)
EXECUTORS = ("kubelet", "agent")
WEB = {"name": "web", "image": "httpd:2", "startupProbe": {"tcpSocket": {"port": 80}}}
DB = {"name": "db", "image": "db:1"}


def sidecar_task(executor: str, *, status: dict[str, Any] | None = None, **kw: Any) -> Task:
    return decode_task(
        task_dict(
            step("a", command=["x"]),
            step("b", command=["x"]),
            sidecars=[WEB, DB],
            executor=executor,
            status=status,
            **kw,
        )
    )


def side(
    name: str,
    state: str = "running",
    *,
    started: bool | None = True,
    ready: bool = True,
    restarts: int = 0,
    reason: str | None = None,
    message: str | None = None,
    code: int = 0,
    last_exit: int | None = None,
) -> dict[str, Any]:
    """A sidecar's container status as the kubelet writes it."""
    if state == "running":
        st: dict[str, Any] = {"running": {"startedAt": ts(0.5)}}
    elif state == "terminated":
        st = {
            "terminated": {
                "exitCode": code,
                "reason": reason or ("Completed" if code == 0 else "Error"),
                "startedAt": ts(0.5),
                "finishedAt": ts(30),
            }
        }
    else:
        w = {k: v for k, v in (("reason", reason), ("message", message)) if v is not None}
        st = {"waiting": w}
    cs: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts, "state": st}
    if started is not None:
        cs["started"] = started
    if last_exit is not None:
        cs["lastState"] = {
            "terminated": {"exitCode": last_exit, "reason": "Error", "finishedAt": ts(3)}
        }
    return cs


def step_ran(t: Task, name: str, code: int = 0, start: float = 1, end: float = 2) -> Any:
    """A step's finished container: the kubelet's exit code, and the agent's state too."""
    cs = terminated(name, code, start, end)
    if t.spec.executor == "agent":
        cs["state"]["terminated"]["message"] = json.dumps(
            {
                "v": 1,
                "name": name,
                "exitCode": code,
                "startedAt": ts(start).replace("Z", ".000Z"),
                "finishedAt": ts(end).replace("Z", ".000Z"),
                "skipped": False,
                "timedOut": False,
                "abort": code != 0,
                "error": None,
                "results": [],
            }
        )
    return cs


def the_pod(t: Task, statuses: list[Any], phase: str = "Running") -> Pod:
    """``t``'s rendered pod with these container statuses, each put where the kubelet puts
    it (sidecars and init containers in initContainerStatuses), in the given order."""
    rendered = render_pod(t, SETTINGS)
    init_names = {c["name"] for c in rendered["spec"].get("initContainers", [])}
    if t.spec.executor == "agent" and not any(s["name"] == INSTALL_CONTAINER for s in statuses):
        statuses = [terminated(INSTALL_CONTAINER, 0, 0, 0.2), *statuses]
    obj = {
        **rendered,
        "metadata": {**rendered["metadata"], "uid": "pod-uid", "creationTimestamp": ts(-1)},
        "status": {
            "phase": phase,
            "startTime": ts(0),
            "initContainerStatuses": [s for s in statuses if s["name"] in init_names],
            "containerStatuses": [s for s in statuses if s["name"] not in init_names],
        },
    }
    obj["spec"]["nodeName"] = "node-1"
    return decode_pod(obj)


def status_of(t: Task, p: Pod, now: float = 100) -> TaskStatus:
    return compute_status(t, p, now=at(now), settings=SETTINGS)


def cond(st: TaskStatus) -> tuple[str | None, str | None, str]:
    c = st.condition()
    assert c is not None
    return st.status, c.reason, c.message or ""


# --- status.sidecars --------------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sidecars_are_read_by_name_whatever_the_order(executor: str) -> None:
    t = sidecar_task(executor)
    statuses = [
        running("a", 1),
        side("db", restarts=2, ready=False),
        side("web"),
    ]
    st = status_of(t, the_pod(t, statuses))
    assert st.sidecars == [
        SidecarStatus(name="web", state="Running", ready=True, restarts=0),
        SidecarStatus(name="db", state="Running", ready=False, restarts=2),
    ]
    assert [(s.name, s.state) for s in st.steps] == [("a", "Running"), ("b", "Waiting")]
    assert cond(st)[:2] == ("Running", "Running")


@pytest.mark.parametrize(
    ("cs", "expected"),
    [
        (None, SidecarStatus(name="web", state="Waiting")),
        (
            side("web", "waiting", started=False, ready=False, reason="ErrImagePull", message="m"),
            SidecarStatus(name="web", state="Waiting", reason="ErrImagePull", message="m"),
        ),
        # the kubelet's "" is left out
        (
            side("web", "waiting", started=None, ready=False, reason="", message=""),
            SidecarStatus(name="web", state="Waiting"),
        ),
        (
            side("web", "terminated", code=137, reason="Error", ready=False, restarts=1),
            SidecarStatus(
                name="web", state="Terminated", exit_code=137, reason="Error", restarts=1
            ),
        ),
        (
            side("web", started=False, ready=False),
            SidecarStatus(name="web", state="Running", ready=False),
        ),
    ],
)
def test_each_sidecar_state(cs: dict[str, Any] | None, expected: SidecarStatus) -> None:
    t = sidecar_task("kubelet")
    st = status_of(t, the_pod(t, [cs] if cs is not None else []))
    assert st.sidecars[0] == expected
    assert st.sidecars[1] == SidecarStatus(name="db", state="Waiting")


def test_no_sidecars_no_field() -> None:
    t = decode_task(task_dict(step("a", command=["x"]), executor="kubelet"))
    st = status_of(t, the_pod(t, [running("a", 1)]))
    assert st.sidecars == []
    assert "sidecars" not in msgspec.to_builtins(st)


# --- the end: the regular containers decide ---------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("code", [0, 137, 143])
def test_sidecars_stopped_at_the_end_are_no_failure(executor: str, code: int) -> None:
    t = sidecar_task(executor)
    statuses = [
        side("web", "terminated", code=code, ready=False),
        side("db", "terminated", code=code, ready=False),
        step_ran(t, "a", 0, 1, 2),
        step_ran(t, "b", 0, 2, 3),
    ]
    st = status_of(t, the_pod(t, statuses, phase="Succeeded"))
    assert cond(st) == ("Successful", "Succeeded", "all 2 steps succeeded")
    assert [s.state for s in st.sidecars] == ["Terminated", "Terminated"]
    assert [s.exit_code for s in st.sidecars] == [code, code]
    assert st.duration == "2s"  # from the steps alone: sidecars run before and after them


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_failed_step_is_the_news_not_the_stopped_sidecars(executor: str) -> None:
    t = sidecar_task(executor)
    statuses = [
        side("web", "terminated", code=143, ready=False),
        side("db", "terminated", code=137, ready=False),
        step_ran(t, "a", 3, 1, 2),
    ]
    if executor == "agent":
        statuses.append(step_ran(t, "b", 0, 2, 2))  # the agent's skip is a state too
        statuses[-1]["state"]["terminated"]["message"] = json.dumps(
            {
                "v": 1,
                "name": "b",
                "exitCode": 0,
                "startedAt": None,
                "finishedAt": None,
                "skipped": True,
                "timedOut": False,
                "abort": True,
                "error": "step a failed",
                "results": [],
            }
        )
    st = status_of(t, the_pod(t, statuses, phase="Failed"))
    status, reason, message = cond(st)
    assert (status, reason) == ("Failure", "StepFailed")
    assert message.startswith("step a (1/2) failed with exit code 3")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_succeeded_pod_with_a_stale_sidecar_status_succeeds(executor: str) -> None:
    t = sidecar_task(executor)
    statuses = [side("web"), side("db"), step_ran(t, "a"), step_ran(t, "b", 0, 2, 3)]
    st = status_of(t, the_pod(t, statuses, phase="Succeeded"))
    assert cond(st)[:2] == ("Successful", "Succeeded")


# --- a sidecar that cannot start --------------------------------------------------------------

NOT_FOUND = (
    'failed to pull and unpack image "docker.io/library/httpd:2": failed to resolve reference '
    '"docker.io/library/httpd:2": rpc error: code = NotFound desc = not found'
)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    ("reason", "message", "now", "expected"),
    [
        # at once: what no retry can cure (the step rules of status/_pull.py)
        (
            "InvalidImageName",
            "bad",
            1,
            "sidecar web: cannot pull image 'httpd:2' (InvalidImageName)",
        ),
        (
            "ErrImageNeverPull",
            None,
            1,
            "sidecar web: cannot pull image 'httpd:2' (ErrImageNeverPull)",
        ),
        ("ErrImagePull", NOT_FOUND, 1, "sidecar web: the registry has no image"),
        # the pull timeout, counted from the pod's start
        ("ImagePullBackOff", "back-off", 300, "sidecar web: cannot pull image 'httpd:2' for 5m0s"),
        (
            "CreateContainerConfigError",
            "no secret",
            120,
            "sidecar web: cannot create the container",
        ),
        # a crash loop before it ever started
        (
            "CrashLoopBackOff",
            "back-off 10s restarting failed container=web",
            1,
            "sidecar web keeps failing before it started (CrashLoopBackOff: back-off 10s "
            "restarting failed container=web); its last run ended with exit code 1, Error",
        ),
    ],
)
def test_a_sidecar_that_cannot_start_fails_the_task(
    executor: str, reason: str, message: str | None, now: float, expected: str
) -> None:
    t = sidecar_task(executor)
    cs = side("web", "waiting", started=False, ready=False, reason=reason, message=message)
    if reason == "CrashLoopBackOff":
        cs = side(
            "web",
            "waiting",
            started=False,
            ready=False,
            reason=reason,
            message=message,
            restarts=3,
            last_exit=1,
        )
    st = status_of(t, the_pod(t, [cs, waiting("db", "PodInitializing")]), now=now)
    status, why, text = cond(st)
    assert (status, why) == ("Failure", "SidecarFailed")
    assert text.startswith(expected), text
    assert [s.state for s in st.steps] == ["NotRun", "NotRun"]
    assert st.completion_time == ts(now)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    ("reason", "why", "requeue"),
    [
        ("ErrImagePull", "ImagePullBackOff", 240.0),
        ("ImagePullBackOff", "ImagePullBackOff", 240.0),
        ("CreateContainerConfigError", "CreateContainerConfigError", 60.0),
    ],
)
def test_a_sidecar_pull_waits_as_a_steps_does(
    executor: str, reason: str, why: str, requeue: float
) -> None:
    t = sidecar_task(executor)
    cs = side("web", "waiting", started=False, ready=False, reason=reason, message="m")
    ev = evaluate(t, the_pod(t, [cs]), now=at(60), settings=SETTINGS)
    status, got, message = cond(ev.status)
    assert (status, got) == ("Pending", why)
    assert message.startswith("sidecar web: ")
    assert "the Task fails if this lasts" in message
    assert ev.requeue_after == requeue


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_second_sidecar_is_checked_once_the_first_started(executor: str) -> None:
    t = sidecar_task(executor)
    statuses = [side("web"), side("db", "waiting", started=False, reason="InvalidImageName")]
    st = status_of(t, the_pod(t, statuses))
    assert cond(st)[:2] == ("Failure", "SidecarFailed")
    assert cond(st)[2].startswith("sidecar db: cannot pull image 'db:1' (InvalidImageName)")


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    ("cs", "message"),
    [
        (side("web", started=False, ready=False), "waiting for sidecar web to start"),
        (
            side("web", "waiting", started=False, reason="ContainerCreating"),
            "waiting for sidecar web to start (ContainerCreating)",
        ),
        # not its turn yet: the step's own words
        (waiting("web", "PodInitializing"), "waiting for step a (1/2) to start"),
    ],
)
def test_the_task_waits_for_a_starting_sidecar(
    executor: str, cs: dict[str, Any], message: str
) -> None:
    t = sidecar_task(executor)
    st = status_of(t, the_pod(t, [cs]))
    assert cond(st)[:2] == ("Pending", "Pending")
    assert cond(st)[2].startswith(message), cond(st)


def test_the_agent_install_comes_first() -> None:
    t = sidecar_task("agent")
    install = waiting(INSTALL_CONTAINER, "InvalidImageName", "bad")
    statuses = [install, waiting("web", "PodInitializing"), waiting("db", "PodInitializing")]
    st = status_of(t, the_pod(t, statuses))
    assert cond(st)[:2] == ("Failure", "AgentInstallFailed")


# --- a sidecar that started and crashes later -------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "ErrImagePull"])
def test_a_started_sidecar_that_crashes_is_only_restarted(executor: str, reason: str) -> None:
    t = sidecar_task(executor)
    # started goes false while it waits for its restart; the steps running prove it started
    crashed = side(
        "web", "waiting", started=False, ready=False, reason=reason, restarts=4, last_exit=2
    )
    statuses = [crashed, side("db"), step_ran(t, "a"), running("b", 2)]
    st = status_of(t, the_pod(t, statuses), now=1000)
    assert cond(st)[:2] == ("Running", "Running")
    assert st.sidecars[0] == SidecarStatus(name="web", state="Waiting", restarts=4, reason=reason)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_started_first_sidecar_is_proven_by_the_next_one(executor: str) -> None:
    t = sidecar_task(executor)
    crashed = side("web", "waiting", started=False, reason="CrashLoopBackOff", restarts=1)
    st = status_of(t, the_pod(t, [crashed, side("db", started=False)]))
    assert cond(st) == ("Pending", "Pending", "waiting for sidecar db to start")


# --- events -----------------------------------------------------------------------------------


def _with_restarts(*counts: int, pod: str = "demo-pod", attempt: int | None = None) -> TaskStatus:
    return TaskStatus(
        status="Running",
        pod_name=pod,
        attempt=attempt,
        sidecars=[
            SidecarStatus(name=n, state="Running", restarts=c)
            for n, c in zip(("web", "db"), counts, strict=False)
        ],
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (_with_restarts(0, 0), _with_restarts(0, 0), []),
        (
            _with_restarts(0, 0),
            _with_restarts(1, 0),
            [("sidecar web was restarted (once so far); the steps go on", "1/web/1")],
        ),
        # several restarts between two looks: one Event
        (
            _with_restarts(1, 0),
            _with_restarts(4, 2),
            [
                ("sidecar web was restarted (4 times so far); the steps go on", "1/web/4"),
                ("sidecar db was restarted (2 times so far); the steps go on", "1/db/2"),
            ],
        ),
        # the first look at a pod counts from 0
        (None, _with_restarts(2), [("sidecar web was restarted (2 times so far)", "1/web/2")]),
        # a new attempt's pod counts from 0 again, and says which attempt
        (
            _with_restarts(5, pod="demo-pod"),
            _with_restarts(1, pod="demo-pod-2", attempt=2),
            [("sidecar web was restarted (once so far, attempt 2)", "2/web/1")],
        ),
        # a lower count (a status written by hand) is no restart
        (_with_restarts(3), _with_restarts(1), []),
    ],
)
def test_sidecar_restarted_events(
    old: TaskStatus | None, new: TaskStatus, expected: list[tuple[str, str]]
) -> None:
    t = sidecar_task("kubelet")
    events = [e for e in transition_events(t, old, new) if e.reason == "SidecarRestarted"]
    assert [(e.type, e.key) for e in events] == [("Warning", key) for _, key in expected]
    for e, (message, _) in zip(events, expected, strict=True):
        assert e.message.startswith(message), e.message


def test_a_restart_is_told_once_and_before_the_status_that_shows_it() -> None:
    t = sidecar_task("kubelet")
    first = [side("web"), side("db"), running("a", 1)]
    p1 = plan(t, the_pod(t, first), now=at(10), settings=SETTINGS)
    assert p1.status is not None
    t1 = decode_task(
        task_dict(
            step("a", command=["x"]),
            step("b", command=["x"]),
            sidecars=[WEB, DB],
            executor="kubelet",
            status=msgspec.to_builtins(p1.status),
        )
    )
    again = [side("web", restarts=1), side("db"), running("a", 1)]
    p2 = plan(t1, the_pod(t1, again), now=at(20), settings=SETTINGS)
    assert p2.status is not None
    assert p2.status.sidecars[0].restarts == 1
    restarted = [e for e in p2.events if e.reason == "SidecarRestarted"]
    assert restarted == [
        EventSpec(
            type="Warning",
            reason="SidecarRestarted",
            message="sidecar web was restarted (once so far); the steps go on",
            key="1/web/1",
        )
    ]
    # the status not written (an event failed): the same event, the same key, planned again
    assert plan(t1, the_pod(t1, again), now=at(21), settings=SETTINGS).events == p2.events
    # written: nothing more to tell
    t2 = msgspec.structs.replace(t1, status=p2.status)
    assert plan(t2, the_pod(t2, again), now=at(22), settings=SETTINGS).events == ()


# --- Unsupported ------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_sidecars_need_native_sidecars(executor: str) -> None:
    old_server = msgspec.structs.replace(SETTINGS, native_sidecars=False)
    p = plan(sidecar_task(executor), None, now=at(0), settings=old_server)
    assert p.create_pod is None
    assert p.status is not None
    status, reason, message = cond(p.status)
    assert (status, reason) == ("Failure", "Unsupported")
    assert message.startswith(
        "spec.sidecars needs native sidecars (Kubernetes 1.29 or later); this API server is older"
    )
    assert [s.state for s in p.status.steps] == ["NotRun", "NotRun"]
    assert [(e.reason, e.key) for e in p.events] == [("Failed", "final")]


@pytest.mark.parametrize("native", [True, False])
def test_without_sidecars_the_api_servers_version_does_not_matter(native: bool) -> None:
    t = decode_task(task_dict(step("a", command=["x"]), executor="kubelet"))
    settings = msgspec.structs.replace(SETTINGS, native_sidecars=native)
    p = plan(t, None, now=at(0), settings=settings)
    assert p.create_pod == render_pod(t, settings)


def test_unsupported_is_never_retried() -> None:
    old_server = msgspec.structs.replace(SETTINGS, native_sidecars=False)
    p = plan(sidecar_task("agent", retries=3), None, now=at(0), settings=old_server)
    assert p.create_pod is None
    assert p.status is not None
    assert cond(p.status)[:2] == ("Failure", "Unsupported")


def test_a_gone_pods_sidecars_stay_as_last_seen() -> None:
    t = sidecar_task("kubelet")
    last = status_of(t, the_pod(t, [side("web", restarts=2), side("db"), running("a", 1)]))
    gone = compute_status(
        msgspec.structs.replace(t, status=last), None, now=at(200), settings=SETTINGS
    )
    assert cond(gone)[:2] == ("Failure", "PodDeleted")
    assert gone.sidecars == last.sidecars
    assert gone.sidecars[0].restarts == 2
