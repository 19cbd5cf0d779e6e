"""The Task API, ``api.practice.com/v1alpha1``.

These msgspec structs are the single source of truth: the engine decodes Tasks with them and
:mod:`taskflow.api.schema` derives the CRD's structural OpenAPI schema from them. Nested
Kubernetes types (env, volumes, affinity, ...) are kept as plain dicts here (they are passed to
the pod verbatim) and carry a :func:`K8sType` marker naming the kubernetes-asyncio model whose
real schema the CRD gets.
"""

# gc=False: plain data, never in a reference cycle (see taskflow.api.meta).

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

import msgspec

from taskflow.api._fields import K8sType, _doc, _Obj, _Objs, _rule, _rules
from taskflow.api.duration import DURATION_HINT, DURATION_PATTERN
from taskflow.api.meta import ObjectMeta
from taskflow.api.task_status import STATUS_RULES, TaskStatus

GROUP: Final = "api.practice.com"
VERSION: Final = "v1alpha1"
KIND: Final = "Task"
PLURAL: Final = "tasks"
SINGULAR: Final = "task"
LIST_KIND: Final = "TaskList"
SHORT_NAMES: Final = ("ta",)
API_VERSION: Final = f"{GROUP}/{VERSION}"

# --- limits (enforced by the CRD schema; chosen so the CEL cost estimate stays small) ---
MAX_STEPS: Final = 64
#: Scripts travel in pod annotations, which the API server caps at 256 KiB in total. 60,000
#: characters (at most 4 bytes each) for all scripts of a Task together keeps the annotations
#: under that limit.
MAX_SCRIPT_CHARS: Final = 60_000
MAX_VOLUMES: Final = 64
MAX_MOUNTS: Final = 64
MAX_RESULTS: Final = 16
#: native sidecars of a Task; few, and each of its rules is priced per sidecar
MAX_SIDECARS: Final = 8
RESULT_NAME_PATTERN: Final = r"^[A-Za-z0-9_-]+$"
DNS_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

# --- names and paths taskflow adds to the pod (reserved for users) ---
#: every volume taskflow adds is named so (and no user volume may be): scripts, workspace,
#: and under the agent bin and run-<N>
RESERVED_VOLUME_PREFIX: Final = "taskflow-"
SCRIPTS_VOLUME: Final = "taskflow-scripts"
WORKSPACE_VOLUME: Final = "taskflow-workspace"
BIN_VOLUME: Final = "taskflow-bin"
RUN_VOLUME_PREFIX: Final = "taskflow-run-"
#: every path taskflow mounts is under this one (scripts, bin, run); no step may mount there
TASKFLOW_DIR: Final = "/taskflow"
SCRIPTS_DIR: Final = f"{TASKFLOW_DIR}/scripts"
WORKSPACE_DIR: Final = "/workspace"
#: A mount path at or under /taskflow however written: the API server compares mount paths
#: as strings ("must be unique"), the runtime cleans them, so "/taskflow//run/a",
#: "/taskflow/run/a/" or "/x/../taskflow/run/a" would land on taskflow's own mount. With
#: ".." elements refused, a path cleans to one under /taskflow only if it starts with
#: "taskflow" after a "/" and any number of "" and "." elements; refusing a first element ""
#: or "." (a leading "//", "/./", "./") leaves "/taskflow" and "taskflow" (relative) to check.
#: Prefixes and sizes rather than a regex: the CRD's CEL prices a regex at every character
#: of 64 x 64 mount paths of 4096 characters, far past the API server's limit.
RESERVED_PATH_PREFIXES: Final = ("//", "/./", "./", "../", "/taskflow/", "taskflow/")
RESERVED_PATHS: Final = (".", "..", "/.", "/taskflow", "taskflow")
#: a ".." element after the first one
DOTDOT_INSIDE: Final = "/../"
DOTDOT_LAST: Final = "/.."
#: the pod's grace period when podTemplate.terminationGracePeriodSeconds is unset
#: (Kubernetes' default, which the API server fills in)
DEFAULT_GRACE_SECONDS: Final = 30
#: where results are described (CRD descriptions); README and docs/agent.md say the same
RESULTS_ARE_CODE: Final = (
    "A substituted $(steps.STEP.results.NAME) is pasted into the text as is: in a script "
    'or a shell command it is shell code, and a result like x"; echo INJECTED; : " runs its echo. '
    "Pass results as data instead: an env value (env: [{name: TAG, value: "
    '$(steps.build.results.tag)}]) and "$TAG" in the script, double-quoted.'
)
RESERVED_MOUNT_MESSAGE: Final = (
    "a step may not mount taskflow's own volumes (taskflow-bin, taskflow-run-N, "
    f"taskflow-scripts); {WORKSPACE_VOLUME} and podTemplate.volumes it may"
)
SIDECAR_RESERVED_MOUNT_MESSAGE: Final = RESERVED_MOUNT_MESSAGE.replace("a step", "a sidecar")
RESERVED_PATH_MESSAGE: Final = (
    f"mount paths under {TASKFLOW_DIR} are taskflow's (and a mount path may not have '..' "
    "elements nor start with '//', '/./' or './')"
)

# --- executors (docs/agent.md) ---
#: the agent pod's init container that installs the agent (a step may not use the name)
INSTALL_CONTAINER: Final = "taskflow-install"
EXECUTOR_AGENT: Final = "agent"
EXECUTOR_KUBELET: Final = "kubelet"
EXECUTORS: Final = (EXECUTOR_AGENT, EXECUTOR_KUBELET)
ON_ERROR_CONTINUE: Final = "continue"
ON_ERROR_STOP: Final = "stopAndFail"
#: the step fields only the agent can honour (the kubelet has no per-step timeout, no
#: continue-on-error, no results and no retries)
AGENT_STEP_FIELDS: Final = ("timeout", "onError", "results", "retries", "retryDelay")
#: a step's retryDelay when it sets retries but not the delay
DEFAULT_RETRY_DELAY: Final = "1s"
#: the longest wait before a step's retry, however far its delay has doubled (the agent's
#: RETRY_DELAY_MAX)
MAX_RETRY_DELAY_SECONDS: Final = 60
#: ``$(steps.STEP.results.NAME)``, as the agent substitutes it (CEL's RE2 and Python's re
#: read it alike; ``[$]``/``[(]`` rather than backslash escapes, which CEL literals refuse)
RESULT_REF_PATTERN: Final = (
    r"[$][(]steps[.]([a-z0-9]([-a-z0-9]*[a-z0-9])?)[.]results[.]([A-Za-z0-9_-]+)[)]"
)

MAX_RETRIES: Final = 10

_DNS_LABEL_RULE_TEXT: Final = (
    'a DNS label: at most 63 lowercase letters, digits and "-", starting and ending with a '
    "letter or digit"
)
_DNS_LABEL_MESSAGE: Final = "step name must be " + _DNS_LABEL_RULE_TEXT

StepName = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=63, description="Name of the step (a DNS label)."),
    _rules(
        _rule(
            f"self.matches('{DNS_LABEL_PATTERN}')",
            _DNS_LABEL_MESSAGE,
            "'step name \"' + self + '\" is not " + _DNS_LABEL_RULE_TEXT + "'",
        )
    ),
]


Duration = Annotated[
    str,
    msgspec.Meta(max_length=64),
    _rules(
        _rule(
            f"self.matches('{DURATION_PATTERN}')",
            f"must be {DURATION_HINT}",
            f"'\"' + self + '\" is not {DURATION_HINT}'",
        )
    ),
]


_IMAGE_RULE: Final = _rule(
    r"!self.matches('^\\s|\\s$')", "image must not start or end with whitespace"
)


class StepResult(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A result a step declares (executor agent)."""

    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=63,
            pattern=RESULT_NAME_PATTERN,
            description="Letters, digits, '-' and '_'.",
        ),
    ]
    description: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class Step(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """One step: a Kubernetes container that runs to completion, plus an optional script.

    Steps run one after another in spec order (as the pod's init containers; the last step
    is the pod's regular container).
    """

    #: descriptions of fields without their own come from this kubernetes-asyncio model
    k8s_model: ClassVar[str] = "V1Container"

    name: StepName
    image: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=4096, description="Container image of the step."),
        _rules(_IMAGE_RULE),
    ]
    script: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=MAX_SCRIPT_CHARS,
                description=(
                    "A script to run instead of command: it is written to "
                    "/taskflow/scripts/<step name> (mode 0755) and executed with the step's "
                    "args. Without a shebang line, '#!/bin/sh' is prepended. " + RESULTS_ARE_CODE
                ),
            ),
        ]
        | None
    ) = None
    command: list[str] = []
    args: list[str] = []
    working_dir: str | None = None
    env: Annotated[_Objs, K8sType("list[V1EnvVar]")] = []
    env_from: Annotated[_Objs, K8sType("list[V1EnvFromSource]")] = []
    resources: (
        Annotated[
            _Obj,
            K8sType("V1ResourceRequirements"),
            _doc(
                "Compute resources of this step. Steps run one at a time, so the pod "
                "requests the largest step's resources, not their sum."
            ),
        ]
        | None
    ) = None
    volume_mounts: Annotated[
        _Objs,
        K8sType("list[V1VolumeMount]"),
        msgspec.Meta(max_length=MAX_MOUNTS),
        _doc(
            "Volumes to mount into this step's container: podTemplate.volumes, or "
            f"{WORKSPACE_VOLUME} (the shared workspace, mounted at {WORKSPACE_DIR} unless "
            "the step mounts something there). taskflow's other volumes (taskflow-bin, "
            f"taskflow-run-N, taskflow-scripts) and mount paths under {TASKFLOW_DIR} are "
            "taskflow's: refused."
        ),
    ] = []
    volume_devices: Annotated[_Objs, K8sType("list[V1VolumeDevice]")] = []
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    security_context: (
        Annotated[
            _Obj, K8sType("V1SecurityContext"), _doc("Security options of this step's container.")
        ]
        | None
    ) = None
    termination_message_path: str | None = None
    termination_message_policy: Literal["File", "FallbackToLogsOnError"] | None = None
    stdin: bool | None = None
    stdin_once: bool | None = None
    tty: bool | None = None
    # --- agent executor only (docs/agent.md) ---
    timeout: (
        Annotated[
            Duration,
            _doc(
                "executor agent: stop the step's command after this long (SIGTERM, SIGKILL "
                "after the pod's grace period); the Task ends in Failure with reason "
                "StepTimeout."
            ),
        ]
        | None
    ) = None
    on_error: (
        Annotated[
            Literal["continue", "stopAndFail"],
            _doc(
                "executor agent: what a failure of this step does. stopAndFail (the "
                "default): later steps do not run and the Task fails. continue: later steps "
                "run and the Task can still succeed; the real exit code is in the step's "
                "status."
            ),
        ]
        | None
    ) = None
    results: Annotated[
        list[StepResult],
        msgspec.Meta(max_length=MAX_RESULTS),
        _doc(
            "executor agent: small values this step writes to the file $(results.NAME.path); "
            "later steps use them as $(steps.STEP.results.NAME) in command, args, env values "
            "and scripts; they also reach status.steps[].results. A step's results and its "
            "status fields must fit in its termination message: 12 KiB shared by the pod's "
            "containers, at most 4096 bytes each (the agent is told its share). " + RESULTS_ARE_CODE
        ),
        _rules(
            _rule(
                "self.all(r, self.exists_one(q, q.name == r.name))",
                "result names must be unique within a step",
            )
        ),
    ] = []
    retries: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=MAX_RETRIES,
            description=(
                "executor agent: run the step's command again, in the same container, when "
                "it fails (non-zero exit code or timeout), up to this many more times. The "
                "workspace is kept, the step's results are cleared before each attempt, "
                "timeout applies to each attempt; the step's status is the last attempt's, "
                "with attempts and retriedExitCodes."
            ),
        ),
    ] = 0
    retry_delay: (
        Annotated[
            Duration,
            _doc(
                "executor agent: how long to wait before the first retry of the step "
                f"(default {DEFAULT_RETRY_DELAY}); doubled before each next one, at most "
                f"{MAX_RETRY_DELAY_SECONDS}s."
            ),
        ]
        | None
    ) = None


class PodTemplate(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """Pod-level settings of the Task's pod."""

    k8s_model: ClassVar[str] = "V1PodSpec"

    service_account_name: Annotated[str, msgspec.Meta(max_length=253)] | None = None
    node_selector: dict[str, str] = {}
    tolerations: Annotated[_Objs, K8sType("list[V1Toleration]")] = []
    affinity: (
        Annotated[_Obj, K8sType("V1Affinity"), _doc("The pod's scheduling constraints.")] | None
    ) = None
    image_pull_secrets: Annotated[_Objs, K8sType("list[V1LocalObjectReference]")] = []
    volumes: Annotated[
        _Objs,
        K8sType("list[V1Volume]"),
        msgspec.Meta(max_length=MAX_VOLUMES),
        _rules(
            _rule(
                f"self.all(v, !v.name.startsWith('{RESERVED_VOLUME_PREFIX}'))",
                f"volume names starting with '{RESERVED_VOLUME_PREFIX}' are reserved for "
                "taskflow's own volumes",
                "'podTemplate.volumes: volume ' + "
                f"self.map(v, v.name.startsWith('{RESERVED_VOLUME_PREFIX}'), v.name)[0] + "
                f"\" is reserved: names starting with {RESERVED_VOLUME_PREFIX} are taskflow's "
                'own volumes"',
            ),
            _rule(
                "self.all(v, self.exists_one(w, w.name == v.name))",
                "volume names must be unique",
            ),
        ),
    ] = []
    security_context: (
        Annotated[
            _Obj,
            K8sType("V1PodSecurityContext"),
            _doc("Pod-level security attributes and common container settings."),
        ]
        | None
    ) = None
    priority_class_name: Annotated[str, msgspec.Meta(max_length=253)] | None = None
    runtime_class_name: Annotated[str, msgspec.Meta(max_length=253)] | None = None
    termination_grace_period_seconds: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                description=(
                    "Seconds a stopped step (cancel, timeout, deadline) gets between SIGTERM "
                    f"and SIGKILL. Unset: {DEFAULT_GRACE_SECONDS} (Kubernetes' default), for "
                    "a step's timeout too."
                ),
            ),
        ]
        | None
    ) = None


#: CEL, for a volume mount ``m`` and its step ``self``
_STEP: Final = "(has(self.name) ? self.name : '')"
_TAKEN_VOLUME: Final = (
    f"has(m.name) && m.name.startsWith('{RESERVED_VOLUME_PREFIX}') && "
    f"m.name != '{WORKSPACE_VOLUME}'"
)
_TAKEN_PATH: Final = (
    "has(m.mountPath) && ("
    + " || ".join(
        [
            f"m.mountPath.contains('{DOTDOT_INSIDE}')",
            f"m.mountPath.endsWith('{DOTDOT_LAST}')",
            *(f"m.mountPath.startsWith('{p}')" for p in RESERVED_PATH_PREFIXES),
            # == on a 4096-character field is priced as a scan; a prefix and a size are not
            *(
                f"(m.mountPath.startsWith('{p}') && size(m.mountPath) == {len(p)})"
                for p in RESERVED_PATHS
            ),
        ]
    )
    + ")"
)


def _mount_rules(what: str) -> tuple[dict[str, str], ...]:
    """The rules on a step's or a sidecar's (``what``) volume mounts: taskflow's own volumes
    and paths are refused to both alike."""
    message = RESERVED_MOUNT_MESSAGE if what == "step" else SIDECAR_RESERVED_MOUNT_MESSAGE
    return (
        _rule(
            f"!has(self.volumeMounts) || !self.volumeMounts.exists(m, {_TAKEN_VOLUME})",
            message,
            f"'{what} ' + {_STEP} + ': volumeMount ' + "
            f"self.volumeMounts.map(m, {_TAKEN_VOLUME}, m.name)[0] + "
            f"\" is taskflow's own volume: a {what} may mount {WORKSPACE_VOLUME} and "
            'podTemplate.volumes only"',
        ),
        _rule(
            f"!has(self.volumeMounts) || !self.volumeMounts.exists(m, {_TAKEN_PATH})",
            RESERVED_PATH_MESSAGE,
            f"'{what} ' + {_STEP} + ': volumeMount ' + "
            f"self.volumeMounts.map(m, {_TAKEN_PATH}, m.name + ' at ' + m.mountPath)[0] + "
            "': ' + \"" + RESERVED_PATH_MESSAGE + '"',
        ),
    )


SIDECAR_RESERVED_NAME_MESSAGE: Final = (
    f"names starting with {RESERVED_VOLUME_PREFIX} are taskflow's own containers"
)

Steps = Annotated[
    list[
        Annotated[
            Step,
            _rules(
                _rule(
                    "!(has(self.script) && has(self.command))",
                    "a step has either script or command, not both",
                ),
                *_mount_rules("step"),
            ),
        ]
    ],
    msgspec.Meta(
        min_length=1,
        max_length=MAX_STEPS,
        description="The steps, run one after another in this order.",
    ),
    _rules(
        _rule(
            "self.all(s, !has(s.name) || self.exists_one(t, has(t.name) && t.name == s.name))",
            "step names must be unique",
        ),
        _rule(
            "self.map(s, has(s.script) ? size(s.script) : 0).sum() <= " + str(MAX_SCRIPT_CHARS),
            f"the scripts of a Task may have at most {MAX_SCRIPT_CHARS} characters in total",
        ),
    ),
]


SidecarName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=63,
        description=(
            "Name of the sidecar's container (a DNS label, not a step's name, not starting "
            f"with {RESERVED_VOLUME_PREFIX})."
        ),
    ),
    _rules(
        _rule(
            f"self.matches('{DNS_LABEL_PATTERN}')",
            "sidecar name must be " + _DNS_LABEL_RULE_TEXT,
            "'sidecar name \"' + self + '\" is not " + _DNS_LABEL_RULE_TEXT + "'",
        ),
        _rule(
            f"!self.startsWith('{RESERVED_VOLUME_PREFIX}')",
            SIDECAR_RESERVED_NAME_MESSAGE,
            # the message has an apostrophe: a double-quoted CEL string
            "'sidecar name \"' + self + '\" is reserved: ' + \""
            + SIDECAR_RESERVED_NAME_MESSAGE
            + '"',
        ),
    ),
]


class Sidecar(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A native sidecar (Kubernetes 1.29+): a container that starts before the steps, runs
    beside all of them and is stopped by the kubelet once the last step has ended."""

    k8s_model: ClassVar[str] = "V1Container"

    name: SidecarName
    image: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=4096, description="Container image of the sidecar."),
        _rules(_IMAGE_RULE),
    ]
    command: list[str] = []
    args: list[str] = []
    working_dir: str | None = None
    env: Annotated[_Objs, K8sType("list[V1EnvVar]")] = []
    env_from: Annotated[_Objs, K8sType("list[V1EnvFromSource]")] = []
    ports: Annotated[_Objs, K8sType("list[V1ContainerPort]")] = []
    readiness_probe: (
        Annotated[
            _Obj,
            K8sType("V1Probe"),
            _doc("When the sidecar is ready (status.sidecars[].ready); steps do not wait for it."),
        ]
        | None
    ) = None
    startup_probe: (
        Annotated[
            _Obj,
            K8sType("V1Probe"),
            _doc(
                "When the sidecar has started: the steps start once every sidecar's startup "
                "probe has passed (without one, once its container runs)."
            ),
        ]
        | None
    ) = None
    liveness_probe: (
        Annotated[
            _Obj,
            K8sType("V1Probe"),
            _doc("When the kubelet restarts the sidecar (status.sidecars[].restarts)."),
        ]
        | None
    ) = None
    resources: (
        Annotated[
            _Obj,
            K8sType("V1ResourceRequirements"),
            _doc(
                "Compute resources of this sidecar. It runs beside every step, so the pod "
                "requests the largest step's resources plus every sidecar's."
            ),
        ]
        | None
    ) = None
    volume_mounts: Annotated[
        _Objs,
        K8sType("list[V1VolumeMount]"),
        msgspec.Meta(max_length=MAX_MOUNTS),
        _doc(
            "Volumes to mount into the sidecar, as given: podTemplate.volumes, or "
            f"{WORKSPACE_VOLUME} (the steps' shared workspace; not mounted unless listed). "
            "taskflow's other volumes (taskflow-bin, taskflow-run-N, taskflow-scripts) and "
            f"mount paths under {TASKFLOW_DIR} are taskflow's: refused."
        ),
    ] = []
    security_context: (
        Annotated[
            _Obj,
            K8sType("V1SecurityContext"),
            _doc("Security options of this sidecar's container."),
        ]
        | None
    ) = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None


Sidecars = Annotated[
    list[Annotated[Sidecar, _rules(*_mount_rules("sidecar"))]],
    msgspec.Meta(
        max_length=MAX_SIDECARS,
        description=(
            "Native sidecars: containers started before the first step, in this order (each "
            "once its startupProbe passes), that run beside every step and are stopped by "
            "the kubelet when the last step has ended. A sidecar that cannot start (its image "
            "cannot be pulled, it crash-loops before starting) fails the Task with reason "
            "SidecarFailed; one that crashes later is restarted. Needs Kubernetes 1.29 or "
            "later."
        ),
    ),
    _rules(
        _rule(
            "self.all(c, self.exists_one(d, d.name == c.name))",
            "sidecar names must be unique",
        ),
    ),
]


class TaskSpec(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """What to run. Immutable except ``cancel``: delete and re-create the Task to change it."""

    steps: Steps
    sidecars: Sidecars = []
    executor: (
        Annotated[
            Literal["agent", "kubelet"],
            _doc(
                "How the steps run. kubelet: as the pod's init containers, one after "
                "another (no per-step timeout, onError or results). agent: all steps start "
                "together and a small helper in each container hands off to the next in "
                "milliseconds (docs/agent.md). Unset: agent when a step uses timeout, "
                "onError, results or retries, else the operator's --default-executor."
            ),
        ]
        | None
    ) = None
    pod_template: PodTemplate | None = None
    active_deadline_seconds: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                description=(
                    "Seconds the pod may run before Kubernetes stops it; the Task then ends "
                    "in Failure with reason DeadlineExceeded."
                ),
            ),
        ]
        | None
    ) = None
    timeout: (
        Annotated[
            Duration,
            _doc(
                "How long the Task may take, counted from its creation (time spent pending, "
                "pulling images and in every attempt included), e.g. 30m or 1h30m. Past it "
                "the running step is stopped and the Task ends in Failure with reason "
                "TimedOut. Unset: the operator's --default-timeout (1h unless changed)."
            ),
        ]
        | None
    ) = None
    retries: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=MAX_RETRIES,
            description=(
                "How many times to run the Task again, each time in a new pod, after a "
                "failure its steps caused (StepFailed, OOMKilled, Evicted, PodDeleted, "
                "ImagePullFailed, PodFailed, AgentDied, SidecarFailed, ...). Never after "
                "Cancelled, TimedOut, InvalidSpec, InvalidPodSpec, ImageLookupFailed, "
                "ResultsTooLarge, StepStateMismatch, StateUnreadable, AgentInstallFailed, "
                "PodNameTaken, WaitingForOldPod or Unsupported. The next attempt's pod is "
                "created once the failed attempt's pod has stopped. status.attempts keeps "
                "every earlier attempt."
            ),
        ),
    ] = 0
    ttl_seconds_after_finished: (
        Annotated[
            int,
            msgspec.Meta(
                ge=0,
                description=(
                    "Delete the Task (and with it its pods) this many seconds after it "
                    "finished. Unset: the operator's --default-ttl-after-finished (off "
                    "unless set)."
                ),
            ),
        ]
        | None
    ) = None
    cancel: Annotated[
        bool,
        _doc(
            "Set to true to stop the Task: the running step gets SIGTERM (SIGKILL after the "
            "pod's grace period), later steps never start, the pod and its logs are kept, "
            "and the Task ends Cancelled. The only field that may change after creation, "
            "and only from false to true."
        ),
    ] = False


SPEC_IMMUTABLE_MESSAGE: Final = (
    "spec is immutable except spec.cancel: delete and re-create the Task to change it"
)
CANCEL_FINAL_MESSAGE: Final = "a cancel cannot be undone: spec.cancel stays true once set"


def _unchanged_except(*mutable: str) -> str:
    """CEL: every field of TaskSpec but ``mutable`` is as it was (also never added/removed)."""
    fields = [
        f.encode_name for f in msgspec.structs.fields(TaskSpec) if f.encode_name not in mutable
    ]
    return " && ".join(
        f"(has(self.{f}) ? (has(oldSelf.{f}) && self.{f} == oldSelf.{f}) : !has(oldSelf.{f}))"
        for f in fields
    )


AGENT_FIELDS_MESSAGE: Final = (
    "timeout, onError and results of a step need executor: agent (spec.executor is kubelet)"
)
RETRY_FIELDS_MESSAGE: Final = (
    "retries and retryDelay of a step need executor: agent (spec.executor is kubelet)"
)

SIDECAR_STEP_NAME_MESSAGE: Final = (
    "a sidecar may not have a step's name: steps and sidecars are containers of one pod"
)
_STEP_NAMED: Final = "self.steps.exists(s, has(s.name) && s.name == c.name)"

SPEC_RULES: Final = _rules(
    _rule(_unchanged_except("cancel"), SPEC_IMMUTABLE_MESSAGE),
    _rule(
        f"!has(self.sidecars) || !self.sidecars.exists(c, {_STEP_NAMED})",
        SIDECAR_STEP_NAME_MESSAGE,
        f"'sidecar \"' + self.sidecars.map(c, {_STEP_NAMED}, c.name)[0] + "
        "'\" has the name of a step: steps and sidecars are containers of one pod'",
    ),
    _rule(
        "!has(self.executor) || self.executor != 'kubelet' || "
        "self.steps.all(s, !has(s.timeout) && !has(s.onError) && !has(s.results))",
        AGENT_FIELDS_MESSAGE,
    ),
    _rule(
        "!has(self.executor) || self.executor != 'kubelet' || "
        "self.steps.all(s, (!has(s.retries) || s.retries == 0) && !has(s.retryDelay))",
        RETRY_FIELDS_MESSAGE,
    ),
    _rule(
        "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
        CANCEL_FINAL_MESSAGE,
    ),
)


class Task(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: Annotated[TaskSpec, SPEC_RULES]
    status: Annotated[TaskStatus, STATUS_RULES] | None = None
