"""What the CRD schema checks, again in Python for Tasks stored before it (pure)."""

from __future__ import annotations

from taskflow.api.task import (
    DOTDOT_INSIDE,
    DOTDOT_LAST,
    RESERVED_PATH_PREFIXES,
    RESERVED_PATHS,
    RESERVED_VOLUME_PREFIX,
    SIDECAR_RESERVED_NAME_MESSAGE,
    TASKFLOW_DIR,
    WORKSPACE_VOLUME,
    Sidecar,
    Step,
    Task,
)


def spec_problem(task: Task) -> str | None:
    """Why ``task`` cannot be rendered, or None. The CRD schema rejects all of these at apply
    time; this guards against Tasks stored before the schema was installed."""
    steps = task.spec.steps
    if not steps:
        return "a Task needs at least one step"
    names = [s.name for s in steps]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        return f"step names must be unique (duplicated: {', '.join(dups)})"
    for s in steps:
        if s.script is not None and s.command:
            return f"step {s.name}: a step has either script or command, not both"
        if (problem := mount_problem(s)) is not None:
            return problem
    if (problem := sidecar_problem(task)) is not None:
        return problem
    tpl = task.spec.pod_template
    for v in tpl.volumes if tpl else []:
        name = str(v.get("name", ""))
        if name.startswith(RESERVED_VOLUME_PREFIX):
            return (
                f"podTemplate.volumes: volume {name} is reserved: names starting with "
                f"{RESERVED_VOLUME_PREFIX} are taskflow's own volumes"
            )
    return None


def sidecar_problem(task: Task) -> str | None:
    """Why ``task``'s sidecars cannot be rendered (the CRD's rules on them, in their words)."""
    names = [c.name for c in task.spec.sidecars]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        return f"sidecar names must be unique (duplicated: {', '.join(dups)})"
    steps = {s.name for s in task.spec.steps}
    for c in task.spec.sidecars:
        if c.name in steps:
            return (
                f'sidecar "{c.name}" has the name of a step: steps and sidecars are containers '
                "of one pod"
            )
        if c.name.startswith(RESERVED_VOLUME_PREFIX):
            return f'sidecar name "{c.name}" is reserved: {SIDECAR_RESERVED_NAME_MESSAGE}'
        if (problem := mount_problem(c, "sidecar")) is not None:
            return problem
    return None


def mount_problem(container: Step | Sidecar, what: str = "step") -> str | None:
    """The first of a step's or a sidecar's (``what``) volume mounts that would reach
    taskflow's own volumes or paths (the CRD's rules on both, in the same words)."""
    for m in container.volume_mounts:
        name = str(m.get("name", ""))
        if name.startswith(RESERVED_VOLUME_PREFIX) and name != WORKSPACE_VOLUME:
            return (
                f"{what} {container.name}: volumeMount {name} is taskflow's own volume: a "
                f"{what} may mount {WORKSPACE_VOLUME} and podTemplate.volumes only"
            )
        path = m.get("mountPath")
        if isinstance(path, str) and reserved_path(path):
            return (
                f"{what} {container.name}: volumeMount {name} at {path}: mount paths under "
                f"{TASKFLOW_DIR} are taskflow's (and a mount path may not have '..' elements "
                "nor start with '//', '/./' or './')"
            )
    return None


def reserved_path(path: str) -> bool:
    """Whether ``path`` could land at or under /taskflow once cleaned (the CRD's rule, from
    the same tables): it has a ".." element, starts with "//", "/./", "./", "/taskflow/" or
    "taskflow/", or is ".", "/.", "/taskflow" or "taskflow"."""
    return (
        DOTDOT_INSIDE in path
        or path.endswith(DOTDOT_LAST)
        or path.startswith(RESERVED_PATH_PREFIXES)
        or path in RESERVED_PATHS
    )
