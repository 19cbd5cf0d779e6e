"""Hypothesis strategies for Tasks the CRD schema accepts (shared by the unit property tests
and the API-server property test in tests/integration).

Nested Kubernetes values (env, resources, volumes, ...) come from small pools of values
Kubernetes' pod validation accepts; the randomness is where taskflow adds something: step and
task names, step count and order, scripts (size, shebang, any Unicode), args, mounts and
volumes, pod-template fields.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from taskflow.api.task import MAX_SCRIPT_CHARS, MAX_STEPS

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


@st.composite
def dns_label(draw: st.DrawFn, max_size: int = 63) -> str:
    n = draw(st.integers(1, max_size))
    if n == 1:
        return draw(st.sampled_from(_ALNUM))
    first = draw(st.sampled_from(_ALNUM))
    last = draw(st.sampled_from(_ALNUM))
    middle = draw(st.text(alphabet=_ALNUM + "-", min_size=n - 2, max_size=n - 2))
    return first + middle + last


@st.composite
def dns_subdomain(draw: st.DrawFn) -> str:
    labels = draw(st.lists(dns_label(max_size=20), min_size=1, max_size=4))
    name = ".".join(labels)
    if draw(st.booleans()):  # long names exercise the hashed pod name
        name = (name + "." + draw(dns_label()) * 4)[:253].rstrip(".-")
    return name


# printable text in general (args and scripts may contain anything but NUL)
any_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
    | st.sampled_from("\n\t"),
    max_size=40,
)

IMAGES = [
    "busybox:1.36",
    "docker.io/library/alpine:3.20",
    "registry.local:5000/x/y@sha256:" + "a" * 64,
]

ENV: list[dict[str, Any]] = [
    {"name": "PLAIN", "value": "1"},
    {"name": "EMPTY", "value": ""},
    {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {
        "name": "FROM_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}},
    },
    {
        "name": "FROM_RESOURCE",
        "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
    },
]

RESOURCES = [
    {},
    {"requests": {"cpu": "100m", "memory": "64Mi"}},
    {"limits": {"cpu": 1, "memory": "128Mi"}, "requests": {"cpu": "0.5", "memory": 67108864}},
    {"limits": {"ephemeral-storage": "1Gi"}},
]

SECURITY = [
    {"runAsUser": 1000, "runAsNonRoot": True},
    {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    {"readOnlyRootFilesystem": True, "seccompProfile": {"type": "RuntimeDefault"}},
]

POD_SECURITY = [
    {"fsGroup": 2000},
    {"runAsUser": 1000, "runAsGroup": 1000, "supplementalGroups": [3000]},
    {
        "seccompProfile": {"type": "RuntimeDefault"},
        "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
    },
]

VOLUME_SOURCES = [
    {"emptyDir": {}},
    {"emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    {"configMap": {"name": "cm", "optional": True, "items": [{"key": "a", "path": "a.txt"}]}},
    {"secret": {"secretName": "s", "defaultMode": 256}},
    {"persistentVolumeClaim": {"claimName": "pvc", "readOnly": True}},
    {
        "projected": {
            "sources": [
                {
                    "downwardAPI": {
                        "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
                    }
                },
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            ]
        }
    },
    {"hostPath": {"path": "/tmp", "type": "Directory"}},
]

TOLERATIONS = [
    {"key": "k", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "a", "operator": "Equal", "value": "b", "effect": "NoExecute", "tolerationSeconds": 30},
]

AFFINITY = [
    {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
                        ]
                    }
                ]
            }
        }
    },
    {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "x"}},
                    },
                }
            ]
        }
    },
]

_PATH_SEGMENT = st.text(alphabet=_ALNUM + "-_.", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)


@st.composite
def script(draw: st.DrawFn, budget: int) -> str:
    kind = draw(st.sampled_from(["small", "shebang", "big"]))
    if kind == "big" and budget > 1000:
        ch = draw(st.sampled_from(["a", "é", "你", "😀"]))  # 1 to 4 bytes each
        n = draw(st.integers(1000, budget))
        return "echo " + ch * (n - 6) + "\n"
    body = draw(any_text)
    if kind == "shebang":
        body = "#!/bin/sh\n" + body
    return body[:budget]


PROBES: list[dict[str, Any]] = [
    {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    {"httpGet": {"path": "/", "port": 8080}},
    {"exec": {"command": ["true"]}, "failureThreshold": 30},
]


@st.composite
def sidecar_lists(draw: st.DrawFn, taken: set[str]) -> list[dict[str, Any]]:
    """``spec.sidecars`` (0-3 of them) whose names are no step's in ``taken``."""
    names = draw(
        st.lists(
            dns_label(max_size=20).filter(
                lambda n: n not in taken and not n.startswith("taskflow-")
            ),
            max_size=3,
            unique=True,
        )
    )
    out = []
    for i, name in enumerate(names):
        c: dict[str, Any] = {"name": name, "image": draw(st.sampled_from(IMAGES))}
        if draw(st.booleans()):
            c["command"] = draw(st.lists(any_text, min_size=1, max_size=3))
        if draw(st.booleans()):
            c["ports"] = [{"containerPort": 8080 + i}]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if draw(st.booleans()):
                c[probe] = draw(st.sampled_from(PROBES))
        if draw(st.booleans()):
            c["resources"] = draw(st.sampled_from(RESOURCES))
        if draw(st.booleans()):
            c["volumeMounts"] = [{"name": "taskflow-workspace", "mountPath": "/workspace"}]
        out.append(c)
    return out


@st.composite
def task_dicts(
    draw: st.DrawFn,
    max_steps: int = 12,
    namespace: str | None = None,
    service_accounts: list[str] | None = None,
    sidecars: bool = False,
) -> dict[str, Any]:
    """A Task (wire form) the CRD schema and its CEL rules accept.

    ``service_accounts``: names to pick ``serviceAccountName`` from (the API server's
    admission wants an existing one); default: any DNS label. ``sidecars``: some Tasks get
    ``spec.sidecars`` too.
    """
    top = max(1, min(max_steps, MAX_STEPS))
    n = draw(st.one_of(st.integers(1, min(top, 8)), st.integers(1, top)))
    names = draw(st.lists(dns_label(), min_size=n, max_size=n, unique=True))
    vol_names = draw(
        st.lists(
            dns_label(max_size=20).filter(lambda v: not v.startswith("taskflow-")),
            max_size=4,
            unique=True,
        )
    )
    volumes = [{"name": v, **draw(st.sampled_from(VOLUME_SOURCES))} for v in vol_names]
    budget = MAX_SCRIPT_CHARS
    steps = []
    for name in names:
        s: dict[str, Any] = {"name": name, "image": draw(st.sampled_from(IMAGES))}
        mode = draw(st.sampled_from(["command", "script", "entrypoint"]))
        if mode == "command":
            s["command"] = draw(st.lists(any_text, min_size=1, max_size=3))
        elif mode == "script":
            text = draw(script(budget))
            budget -= len(text)
            s["script"] = text
        if draw(st.booleans()):
            s["args"] = draw(st.lists(any_text, max_size=4))
        if draw(st.booleans()):
            s["env"] = draw(
                st.lists(st.sampled_from(ENV), max_size=3, unique_by=lambda e: e["name"])
            )
        if draw(st.booleans()):
            s["resources"] = draw(st.sampled_from(RESOURCES))
        if draw(st.booleans()):
            s["securityContext"] = draw(st.sampled_from(SECURITY))
        if draw(st.booleans()):
            s["workingDir"] = "/" + draw(_PATH_SEGMENT)
        if draw(st.booleans()):
            s["imagePullPolicy"] = draw(st.sampled_from(["Always", "IfNotPresent", "Never"]))
        if draw(st.booleans()):
            s["terminationMessagePolicy"] = draw(st.sampled_from(["File", "FallbackToLogsOnError"]))
        if draw(st.booleans()) and vol_names:
            paths = draw(
                st.lists(
                    st.one_of(
                        st.just("/workspace"),
                        st.builds(lambda a, b: f"/{a}/{b}", _PATH_SEGMENT, _PATH_SEGMENT),
                    ),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
            s["volumeMounts"] = [
                {
                    "name": draw(st.sampled_from(vol_names)),
                    "mountPath": p,
                    "readOnly": draw(st.booleans()),
                }
                for p in paths
                if p != "/taskflow" and not p.startswith("/taskflow/")
            ]
        steps.append(s)
    spec: dict[str, Any] = {"steps": steps}
    if sidecars:
        spec["sidecars"] = draw(sidecar_lists(set(names)))
    tpl: dict[str, Any] = {}
    if volumes:
        tpl["volumes"] = volumes
    if draw(st.booleans()):
        tpl["serviceAccountName"] = draw(
            st.sampled_from(service_accounts) if service_accounts else dns_label()
        )
    if draw(st.booleans()):
        tpl["nodeSelector"] = {"kubernetes.io/os": "linux"}
    if draw(st.booleans()):
        tpl["tolerations"] = draw(st.lists(st.sampled_from(TOLERATIONS), max_size=2))
    if draw(st.booleans()):
        tpl["affinity"] = draw(st.sampled_from(AFFINITY))
    if draw(st.booleans()):
        tpl["imagePullSecrets"] = [{"name": draw(dns_label())}]
    if draw(st.booleans()):
        tpl["securityContext"] = draw(st.sampled_from(POD_SECURITY))
    if draw(st.booleans()):
        tpl["priorityClassName"] = draw(
            st.sampled_from(["system-cluster-critical", "system-node-critical"])
        )
    if draw(st.booleans()) or tpl:
        spec["podTemplate"] = tpl
    if draw(st.booleans()):
        spec["activeDeadlineSeconds"] = draw(st.integers(1, 10**6))
    meta: dict[str, Any] = {
        "name": draw(dns_subdomain()),
        "uid": str(draw(st.uuids())),
        "generation": 1,
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "api.practice.com/v1alpha1",
        "kind": "Task",
        "metadata": meta,
        "spec": spec,
    }
