"""Task -> Pod: the pod the operator creates for a Task (pure; no cluster needed).

* One pod per Task and attempt, named :func:`pod_name` (``<task>-pod``, ``<task>-pod-2``
  for the first retry, hash-shortened past 63 characters), ``restartPolicy: Never``, the
  labels of :mod:`taskflow.labels` and a controller owner reference to the Task
  (``blockOwnerDeletion``).
* Steps run in spec order as the pod's init containers, except the last step, which is the
  pod's regular container. The kubelet enforces the order, stops at the first failure even
  while the operator is down, and sizes the pod by the largest step (max, not sum). Container
  name = step name; each container is the step verbatim (minus ``script``).
* A ``script`` travels in the pod annotation ``script.api.practice.com/<step>`` and is
  projected by one downward-API volume (``taskflow-scripts``, read-only at
  ``/taskflow/scripts``, file mode 0755); the step's command becomes that file, its args are
  kept. A script without a shebang gets ``#!/bin/sh``.
* An emptyDir ``taskflow-workspace`` is mounted at ``/workspace`` in every step that does not
  mount something there itself; user mounts are kept verbatim and pod-template volumes added.
* Steps without ``command`` are left alone: the image's ENTRYPOINT runs with the step's args.
* ``terminationMessagePolicy`` defaults to ``FallbackToLogsOnError`` so that a failing step's
  last log lines reach the Task's status; ``enableServiceLinks`` is off (a step's environment
  does not depend on which Services happen to exist in the namespace).
* ``spec.sidecars`` are native sidecars (KEP-753): init containers with ``restartPolicy:
  Always``, verbatim (mounts as given: the workspace only if listed), before the steps' init
  containers (both executors: after the agent's install container). The kubelet starts them in
  order, each once the previous one's startupProbe passed, and the steps only then; it stops
  them once the regular containers have ended. Their requests need nothing here: the kubelet
  sizes such a pod as the sidecars' sum plus the largest step.

That is the ``kubelet`` executor. The ``agent`` executor (:func:`executor_of`) renders the pod
of docs/agent.md instead (:func:`agent_pod`, below).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final

import msgspec

from taskflow import __version__
from taskflow.api.budget import EPHEMERAL_HEADROOM, message_budget
from taskflow.api.executor import agent_problem, executor_of, result_path
from taskflow.api.task import (
    AGENT_STEP_FIELDS,
    API_VERSION,
    BIN_VOLUME,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_RETRY_DELAY,
    EXECUTOR_AGENT,
    INSTALL_CONTAINER,
    KIND,
    ON_ERROR_STOP,
    RUN_VOLUME_PREFIX,
    SCRIPTS_DIR,
    SCRIPTS_VOLUME,
    WORKSPACE_DIR,
    WORKSPACE_VOLUME,
    Sidecar,
    Step,
    Task,
)
from taskflow.api.validate import spec_problem
from taskflow.labels import (
    ATTEMPT_LABEL,
    EXECUTOR_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TASK_NAME_LABEL,
    TASK_UID_LABEL,
    script_annotation,
)
from taskflow.naming import label_value, pod_name
from taskflow.oci import Resolved, step_argv
from taskflow.settings import DEFAULT_SETTINGS, Settings

DEFAULT_SHEBANG: Final = "#!/bin/sh\n"
SCRIPT_MODE: Final = 0o755
DEFAULT_TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"


class RenderError(ValueError):
    """The Task cannot be turned into a pod (only for Tasks the CRD schema would reject)."""


class ImageLookupError(RenderError):
    """A step under the agent needs its image's ENTRYPOINT/CMD and the registry lookup
    failed (or was not made): the Task ends ``Failure/ImageLookupFailed`` before any pod
    exists."""


#: image -> the registry's answer for it (the engine looks images up; render only reads)
Images = Mapping[str, Resolved]


def pod_labels(task: Task, attempt: int = 1) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        TASK_NAME_LABEL: label_value(task.metadata.name),
        TASK_UID_LABEL: task.metadata.uid,
        ATTEMPT_LABEL: str(attempt),
    }


def normalize_script(script: str) -> str:
    """The file content for ``script``: LF line ends, a shebang at byte 0 (``#!/bin/sh``
    unless the script has its own)."""
    text = script.replace("\r\n", "\n")
    stripped = text.lstrip()
    if stripped.startswith("#!"):
        return stripped
    return DEFAULT_SHEBANG + text


def script_path(step_name: str) -> str:
    return f"{SCRIPTS_DIR}/{step_name}"


def _mounts_workspace(mounts: list[dict[str, Any]]) -> bool:
    return any(str(m.get("mountPath", "")).rstrip("/") == WORKSPACE_DIR for m in mounts)


def _container(step: Step) -> dict[str, Any]:
    c: dict[str, Any] = msgspec.to_builtins(step)
    for field in ("script", *AGENT_STEP_FIELDS):  # taskflow's fields, not the container's
        c.pop(field, None)
    mounts: list[dict[str, Any]] = list(c.get("volumeMounts", []))
    if step.script is not None:
        c["command"] = [script_path(step.name)]
        mounts.append({"name": SCRIPTS_VOLUME, "mountPath": SCRIPTS_DIR, "readOnly": True})
    if not _mounts_workspace(step.volume_mounts):
        mounts.append({"name": WORKSPACE_VOLUME, "mountPath": WORKSPACE_DIR})
    if mounts:
        c["volumeMounts"] = mounts
    c.setdefault("terminationMessagePolicy", DEFAULT_TERMINATION_MESSAGE_POLICY)
    return c


def sidecar_container(sidecar: Sidecar) -> dict[str, Any]:
    """A sidecar as the pod's init container: verbatim, restarted by the kubelet until the
    regular containers have ended (``restartPolicy: Always`` makes it a native sidecar)."""
    c: dict[str, Any] = msgspec.to_builtins(sidecar)
    c["restartPolicy"] = "Always"
    c.setdefault("terminationMessagePolicy", DEFAULT_TERMINATION_MESSAGE_POLICY)
    return c


def render_pod(
    task: Task,
    settings: Settings = DEFAULT_SETTINGS,
    attempt: int = 1,
    images: Images | None = None,
) -> dict[str, Any]:
    """The core/v1 Pod manifest for ``task``'s ``attempt`` (a dict ready to POST).

    ``images`` answers :func:`lookups_needed` (agent steps without ``command``).
    Raises :class:`RenderError` for the Tasks :func:`spec_problem` and
    :func:`~taskflow.api.executor.agent_problem` describe, :class:`ImageLookupError` when a
    needed image is missing from ``images`` or its lookup failed.
    """
    problem = spec_problem(task) or agent_problem(task, settings.default_executor)
    if problem is not None:
        raise RenderError(problem)
    if executor_of(task, settings.default_executor) == EXECUTOR_AGENT:
        return agent_pod(task, settings, attempt, images or {})
    spec = task.spec
    steps = spec.steps

    containers = [_container(s) for s in steps]
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "enableServiceLinks": False}
    # the kubelet's own sizing of native sidecars (their sum plus the largest step) is the
    # right one here: no pod-level resources for this executor
    init = [*(sidecar_container(c) for c in spec.sidecars), *containers[:-1]]
    if init:
        pod_spec["initContainers"] = init
    pod_spec["containers"] = containers[-1:]
    scripts = {s.name: s.script for s in steps if s.script is not None}
    return assemble(task, attempt, pod_spec, scripts)


def assemble(
    task: Task, attempt: int, pod_spec: dict[str, Any], scripts: dict[str, str]
) -> dict[str, Any]:
    """The pod around ``pod_spec``'s containers (both executors): metadata, the volumes
    (template, workspace, scripts; ``pod_spec``'s own ones after them), the deadline and
    the pod template's fields."""
    spec = task.spec
    tpl = spec.pod_template

    volumes: list[dict[str, Any]] = list(tpl.volumes) if tpl else []
    volumes.append({"name": WORKSPACE_VOLUME, "emptyDir": {}})
    annotations = {script_annotation(n): normalize_script(text) for n, text in scripts.items()}
    if scripts:
        items = [
            {
                "path": name,
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{script_annotation(name)}']",
                },
                "mode": SCRIPT_MODE,
            }
            for name in scripts
        ]
        volumes.append({"name": SCRIPTS_VOLUME, "downwardAPI": {"items": items}})
    volumes.extend(pod_spec.pop("volumes", []))

    meta: dict[str, Any] = {"name": pod_name(task.metadata.name, attempt)}
    if task.metadata.namespace:
        meta["namespace"] = task.metadata.namespace
    meta["labels"] = pod_labels(task, attempt)
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": task.metadata.name,
            "uid": task.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]

    pod_spec["volumes"] = volumes
    if spec.active_deadline_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if tpl is not None:
        tpl_dict: dict[str, Any] = msgspec.to_builtins(tpl)
        tpl_dict.pop("volumes", None)
        pod_spec.update(tpl_dict)

    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


# --- the agent executor (docs/agent.md) ------------------------------------------------------
# Task -> Pod for the ``agent`` executor (pure; the contract is docs/agent.md).
#
# * An init container (:data:`INSTALL_CONTAINER`, the agent image) copies the agent into the
#   emptyDir ``taskflow-bin``; every step is a regular container (all start together) whose
#   command is ``/taskflow/bin/taskflow-agent step ... -- ARGV``: the agent waits for the
#   previous step's state, runs ARGV (the step's command + args, exactly), and writes its own
#   state to its run directory and to the termination message (``terminationMessagePolicy:
#   File``), which is where :mod:`taskflow.status` reads it.
# * ``spec.sidecars`` follow the install container, as native sidecars (see the top of this
#   module); the steps start once every sidecar has started.
# * One emptyDir per step (``taskflow-run-<index>``) at ``/taskflow/run/<step>``: read-write in
#   that step, read-only in every later one, absent in earlier ones, so a step can only write
#   its own state and results.
# * ``$(results.NAME.path)`` in command, args, env values and the script becomes the step's
#   result file here; ``$(steps.STEP.results.NAME)`` is left for the agent (run time).
# * Requests: all containers exist at once, so their requests would be summed; the steps'
#   ``cpu``/``memory`` move to the pod-level ``spec.resources`` as the per-resource maximum
#   (a request: the largest; a limit: the largest, only when every step sets one), plus the
#   sidecars' (they run beside every step; a limit only when every sidecar sets one too),
#   which also keep theirs on their containers. Pod-level resources are beta and on by
#   default since Kubernetes 1.34 (``PodLevelResources``); an API server without the feature
#   drops the field, and the pod then requests nothing for them (but the sidecars' own).
#   Other resources (ephemeral storage, extended resources) stay on their containers.
# * A step without ``command`` (nor ``script``) runs what the kubelet would run: its image's
#   ENTRYPOINT + (args or CMD), read from the registry by the engine beforehand
#   (:func:`lookups_needed`, passed in as ``images``); a failed lookup is
#   :class:`ImageLookupError`. The pod is not scheduled yet, so every linux platform of the
#   image counts: when their commands differ, the agent picks its machine's at run time
#   (``--arch``).
# * ``--grace``: the pod's grace period (podTemplate.terminationGracePeriodSeconds, else
#   Kubernetes' 30 s), so that a timed-out step gets SIGKILL when a stopped pod's would.
# * ``--retries N --retry-delay D``: only for a step with retries (without, the command is
#   what it always was), the delay as the Task wrote it (the agent reads Go durations).
# * ``--message-limit``: the bytes of the termination message the kubelet keeps for each
#   container of this pod (:mod:`taskflow.api.budget`: 12 KiB over the steps, the install
#   container and :data:`EPHEMERAL_HEADROOM` ephemeral containers, at most 4096).

BIN_DIR: Final = "/taskflow/bin"
AGENT: Final = f"{BIN_DIR}/taskflow-agent"
RUN_DIR: Final = "/taskflow/run"
TERMINATION_PATH: Final = "/dev/termination-log"
#: resources the pod-level ``spec.resources`` takes (Kubernetes 1.34)
POD_LEVEL_RESOURCES: Final = ("cpu", "memory")

_RESULT_PATH_REF: Final = re.compile(r"[$][(]results[.]([A-Za-z0-9_-]+)[.]path[)]")


def agent_image(settings: Settings) -> str:
    """``--agent-image``, else ``taskflow/agent:<this operator's version>``."""
    return settings.agent_image or f"taskflow/agent:{__version__}"


def run_volume(index: int) -> str:
    return f"{RUN_VOLUME_PREFIX}{index}"


def _paths(text: str, step: Step) -> str:
    """``$(results.R.path)`` of a result the step declares -> its file."""
    declared = {r.name for r in step.results}
    return _RESULT_PATH_REF.sub(
        lambda m: result_path(step.name, m[1]) if m[1] in declared else m[0], text
    )


def _needs_lookup(step: Step) -> bool:
    return step.script is None and not step.command


def lookups_needed(task: Task, settings: Settings) -> tuple[str, ...]:
    """The images whose ENTRYPOINT/CMD :func:`render_pod` needs (in step order, once each):
    none unless the Task runs under the agent and would render."""
    if spec_problem(task) or agent_problem(task, settings.default_executor):
        return ()
    if executor_of(task, settings.default_executor) != EXECUTOR_AGENT:
        return ()
    return tuple(dict.fromkeys(s.image for s in task.spec.steps if _needs_lookup(s)))


def _platform_argv(step: Step, images: Images) -> list[tuple[str, list[str]]]:
    """[(platform, argv)] of a step without command: one entry when every platform of its
    image runs the same, else one per platform."""
    found = images.get(step.image)
    if found is None:
        raise ImageLookupError(
            f"step {step.name}: image {step.image} has not been looked up (its ENTRYPOINT/"
            "CMD comes from the registry; `taskflow render` does not read registries)"
        )
    if found.error is not None:
        raise ImageLookupError(f"step {step.name}: {found.error}")
    out: list[tuple[str, list[str]]] = []
    for platform, command in sorted(found.platforms.items()):
        argv = step_argv(list(step.args), command)
        if argv is None:
            raise ImageLookupError(
                f"step {step.name}: image {step.image} ({platform}) has neither ENTRYPOINT "
                "nor CMD, and the step sets no command"
            )
        out.append((platform, argv))
    if not out:
        raise ImageLookupError(f"step {step.name}: image {step.image}: no linux platform")
    if all(argv == out[0][1] for _, argv in out):
        return out[:1]
    return out


def grace_seconds(task: Task) -> int:
    """The pod's grace period: what the kubelet gives a stopped container before SIGKILL."""
    tpl = task.spec.pod_template
    if tpl is None or tpl.termination_grace_period_seconds is None:
        return DEFAULT_GRACE_SECONDS
    return tpl.termination_grace_period_seconds


def agent_message_limit(steps: int, sidecars: int = 0) -> int:
    """``--message-limit`` of each step of an agent pod with ``steps`` steps: the kubelet's
    budget for it with the install container, the sidecars (init containers too) and room
    for ephemeral containers."""
    return message_budget(steps, init=1 + sidecars, ephemeral=EPHEMERAL_HEADROOM)


class _PodFacts(msgspec.Struct, frozen=True, gc=False):
    """What every step's agent is told about the pod."""

    termination_path: str
    grace: int
    message_limit: int


def _agent_command(step: Step, prev: str | None, pod: _PodFacts, images: Images) -> list[str]:
    cmd = [AGENT, "step", "--name", step.name]
    if prev is not None:
        cmd += ["--prev", prev]
    if step.timeout is not None:
        cmd += ["--timeout", step.timeout]
    if step.retries > 0:
        cmd += ["--retries", str(step.retries)]
        cmd += ["--retry-delay", step.retry_delay or DEFAULT_RETRY_DELAY]
    if step.on_error is not None and step.on_error != ON_ERROR_STOP:
        cmd += ["--on-error", step.on_error]
    for r in step.results:
        cmd += ["--result", r.name]
    if step.script is not None:
        cmd += ["--script", script_path(step.name)]
    cmd += ["--grace", f"{pod.grace}s", "--message-limit", str(pod.message_limit)]
    cmd += ["--termination-path", pod.termination_path]
    if step.script is not None:
        argv = list(step.args)
    elif step.command:
        argv = list(step.command) + list(step.args)
    else:
        choices = _platform_argv(step, images)
        if len(choices) == 1:
            argv = choices[0][1]
        else:  # the agent takes its machine's slice of the concatenation
            argv = []
            for platform, one in choices:
                cmd += ["--arch", f"{platform.removeprefix('linux/')}={len(one)}"]
                argv += one
    return [*cmd, "--", *(_paths(a, step) for a in argv)]


def _step_container(task: Task, i: int, images: Images) -> dict[str, Any]:
    steps = task.spec.steps
    step = steps[i]
    c = _container(step)  # the step verbatim + scripts and workspace mounts
    facts = _PodFacts(
        termination_path=step.termination_message_path or TERMINATION_PATH,
        grace=grace_seconds(task),
        message_limit=agent_message_limit(len(steps), len(task.spec.sidecars)),
    )
    c["command"] = _agent_command(step, steps[i - 1].name if i else None, facts, images)
    c.pop("args", None)
    if "env" in c:
        c["env"] = [
            {**e, "value": _paths(e["value"], step)} if isinstance(e.get("value"), str) else e
            for e in c["env"]
        ]
    c["volumeMounts"] = [
        *c.get("volumeMounts", []),
        {"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": True},
        *(
            {"name": run_volume(j), "mountPath": f"{RUN_DIR}/{s.name}", "readOnly": True}
            for j, s in enumerate(steps[:i])
        ),
        {"name": run_volume(i), "mountPath": f"{RUN_DIR}/{step.name}"},
    ]
    # the agent's state is the message; logs are never a stand-in for it
    c["terminationMessagePolicy"] = "File"
    resources = c.pop("resources", None) or {}
    kept = {
        kind: {k: v for k, v in (resources.get(kind) or {}).items() if k not in POD_LEVEL_RESOURCES}
        for kind in ("requests", "limits")
    }
    kept = {k: v for k, v in kept.items() if v}
    if "claims" in resources:
        kept["claims"] = resources["claims"]
    if kept:
        c["resources"] = kept
    return c


_SUFFIX: Final = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY: Final = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]|)$")


def quantity(text: str | int | float) -> Decimal:
    """A Kubernetes quantity's value (``500m`` -> 0.5, ``1Gi`` -> 1073741824)."""
    m = _QUANTITY.match(str(text).strip())
    if m is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = Decimal(m[1]), m[2]
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _cpu_memory(resources: dict[str, Any] | None, name: str) -> tuple[str | None, str | None]:
    """(request, limit) of ``name`` in a container's resources; a missing request defaults
    to the limit, as the API server's defaulting does."""
    r = resources or {}
    lim = (r.get("limits") or {}).get(name)
    req = (r.get("requests") or {}).get(name, lim)
    return (None if req is None else str(req)), (None if lim is None else str(lim))


def format_quantity(value: Decimal) -> str:
    """A quantity for ``value``: whole numbers as such (in Gi/Mi/Ki when exact), fractions
    in millis, rounded up (the API server keeps no finer cpu)."""
    if value == value.to_integral_value():
        whole = int(value)
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            unit = int(_SUFFIX[suffix])
            if whole and whole % unit == 0:
                return f"{whole // unit}{suffix}"
        return str(whole)
    return f"{int((value * 1000).to_integral_value(rounding=ROUND_CEILING))}m"


def _plus(largest: str, extra: list[str]) -> str:
    """``largest`` plus the ``extra`` quantities (``largest`` as written when none)."""
    if not extra:
        return largest
    return format_quantity(quantity(largest) + sum((quantity(x) for x in extra), Decimal(0)))


def pod_resources(
    steps: list[Step], sidecars: list[Sidecar] | None = None
) -> dict[str, Any] | None:
    """The pod-level ``resources``: per resource the largest step's request/limit (the steps'
    containers all exist at once, but only one runs at a time) plus every sidecar's (they run
    beside all of them). A limit only when every step and every sidecar sets one."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for name in POD_LEVEL_RESOURCES:
        step_res = [_cpu_memory(s.resources, name) for s in steps]
        side_res = [_cpu_memory(c.resources, name) for c in sidecars or []]
        reqs = [req for req, _ in step_res if req is not None]
        side_reqs = [req for req, _ in side_res if req is not None]
        if reqs or side_reqs:
            requests[name] = _plus(max(reqs, key=quantity) if reqs else "0", side_reqs)
        lims = [lim for _, lim in step_res + side_res]
        if steps and all(x is not None for x in lims):
            largest = max((lim for _, lim in step_res if lim is not None), key=quantity)
            limits[name] = _plus(largest, [lim for _, lim in side_res if lim is not None])
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out or None


#: The install container is taskflow's own: it must pass the `restricted` Pod Security
#: Standard wherever the steps do, whatever the pod's securityContext says. A non-root UID of
#: its own (the agent image has no USER): the emptyDir is world-writable, the agent it writes
#: is mode 0555, so steps of any UID run it.
INSTALL_SECURITY: Final[dict[str, Any]] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def agent_pod(
    task: Task, settings: Settings, attempt: int, images: Images | None = None
) -> dict[str, Any]:
    steps = list(task.spec.steps)
    containers = [_step_container(task, i, images or {}) for i in range(len(steps))]
    install = {
        "name": INSTALL_CONTAINER,
        "image": agent_image(settings),
        "command": ["/taskflow-agent", "install", BIN_DIR],
        "volumeMounts": [{"name": BIN_VOLUME, "mountPath": BIN_DIR}],
        "terminationMessagePolicy": DEFAULT_TERMINATION_MESSAGE_POLICY,
        "securityContext": INSTALL_SECURITY,
    }
    sidecars = list(task.spec.sidecars)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        # the sidecars after the install: they may not mount its volume, and steps start
        # once every sidecar has started
        "initContainers": [install, *(sidecar_container(c) for c in sidecars)],
        "containers": containers,
        "volumes": [
            {"name": BIN_VOLUME, "emptyDir": {}},
            *({"name": run_volume(i), "emptyDir": {}} for i in range(len(steps))),
        ],
    }
    if (resources := pod_resources(steps, sidecars)) is not None:
        pod_spec["resources"] = resources
    scripts = {s.name: _paths(s.script, s) for s in steps if s.script is not None}
    pod = assemble(task, attempt, pod_spec, scripts)
    pod["metadata"]["labels"][EXECUTOR_LABEL] = EXECUTOR_AGENT
    return pod
