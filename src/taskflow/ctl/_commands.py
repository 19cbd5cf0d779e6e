"""The people's commands (I/O): get, describe, logs, run, cancel, wait."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TextIO

import anyio
import yaml

from taskflow.api import task as api
from taskflow.ctl import _follow as fsm
from taskflow.ctl._client import Client, CtlError, tasks_path
from taskflow.ctl._describe import describe
from taskflow.ctl._format import GET_HEADERS, can_encode, get_row, summary, table
from taskflow.ctl._logs import Output, show_logs, show_sidecar_log
from taskflow.ctl._model import TaskView, attempt_of, decode_task
from taskflow.inputs import read_documents
from taskflow.status import format_duration


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Streams:
    out: TextIO
    err: TextIO
    out_colour: bool
    err_colour: bool


def _decode(obj: dict[str, Any]) -> TaskView:
    try:
        return decode_task(obj)
    except ValueError as exc:
        raise CtlError(str(exc)) from None


# -- get ------------------------------------------------------------------------------------


def _ascii_only(out: TextIO) -> bool:
    return not can_encode("✓✗▸·", getattr(out, "encoding", None))


async def cmd_get(
    client: Client, name: str | None, *, watch: bool, all_namespaces: bool, s: Streams
) -> int:
    headers = (("NAMESPACE",) if all_namespaces else ()) + GET_HEADERS
    ascii_only = _ascii_only(s.out)

    def row(obj: dict[str, Any]) -> list[str]:
        return get_row(_decode(obj), now(), ascii_only, all_namespaces)

    if not watch:
        if name is not None:
            items = [await client.get_task(name)]
        else:
            path = tasks_path(None if all_namespaces else client.namespace)
            items = (await client.call("GET", path)).get("items") or []
        if not items:
            where = "" if all_namespaces else f" in {client.namespace} namespace"
            s.err.write(f"No tasks found{where}.\n")
            return 0
        s.out.write(table(headers, [row(o) for o in items]))
        return 0

    initial: list[list[str]] = []
    widths: list[int] = []
    async for kind, obj in client.watch_tasks(name, all_namespaces=all_namespaces):
        if kind == "SYNCED":
            if widths:  # a relist after an expired watch: its objects come as changes
                continue
            s.out.write(table(headers, initial))
            s.out.flush()
            widths = [
                max(len(r[i]) for r in [list(headers), *initial]) for i in range(len(headers))
            ]
            continue
        if not widths:
            initial.append(row(obj))
            continue
        cells = row(obj)
        if kind == "DELETED":
            cells[len(headers) - len(GET_HEADERS) + 1] = "Deleted"
        s.out.write("   ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        s.out.write("\n")
        s.out.flush()
    return 0  # pragma: no cover - a watch runs until interrupted


# -- describe -------------------------------------------------------------------------------


async def cmd_describe(client: Client, name: str, s: Streams) -> int:
    task = _decode(await client.get_task(name))
    events = await client.events_of(task.metadata.uid) if task.metadata.uid else []
    s.out.write(describe(task, events, now()))
    return 0


# -- logs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFlags:
    follow: bool = False
    step: str | None = None
    sidecar: str | None = None
    attempt: int | None = None
    timestamps: bool = False
    prefix: bool = True


async def cmd_logs(client: Client, name: str, flags: LogFlags, s: Streams) -> int:
    opts = fsm.Options(follow=flags.follow, step=flags.step, pinned=flags.attempt is not None)
    o = Output(
        s.out, s.err, s.out_colour, s.err_colour, prefix=flags.prefix, timestamps=flags.timestamps
    )
    if flags.sidecar is not None:
        return await show_sidecar_log(
            client, name, flags.sidecar, o, follow=flags.follow, attempt=flags.attempt
        )
    return await show_logs(client, name, opts, o, flags.attempt)


# -- run ------------------------------------------------------------------------------------


def load_tasks(filename: str) -> list[dict[str, Any]]:
    """The Task manifests in FILE ('-': stdin); CtlError when there is none."""
    try:
        docs = read_documents(filename)
    except (OSError, yaml.YAMLError) as exc:
        raise CtlError(f"cannot read {filename}: {exc}") from None
    tasks = []
    for d in docs:
        if not isinstance(d, dict):
            raise CtlError(f"{filename}: a document is not an object")
        if d.get("kind", api.KIND) != api.KIND:
            raise CtlError(f"{filename}: kind {d.get('kind')!r} is not a Task")
        if d.get("apiVersion", api.API_VERSION) != api.API_VERSION:
            raise CtlError(
                f"{filename}: apiVersion {d.get('apiVersion')!r} is not {api.API_VERSION}"
            )
        meta = d.get("metadata") or {}
        if not meta.get("name") and not meta.get("generateName"):
            raise CtlError(f"{filename}: a Task needs metadata.name or metadata.generateName")
        tasks.append({**d, "apiVersion": api.API_VERSION, "kind": api.KIND})
    if not tasks:
        raise CtlError(f"no Task in {filename}")
    return tasks


def namespace_of(manifest: dict[str, Any], default: str, explicit: bool) -> str:
    """kubectl's rule: the manifest's namespace, unless -n names another one (an error)."""
    ns = (manifest.get("metadata") or {}).get("namespace")
    if ns and explicit and ns != default:
        raise CtlError(
            f'the namespace from the provided object "{ns}" does not match the namespace '
            f'"{default}": remove it from the file or from -n'
        )
    return str(ns or default)


async def cmd_run(
    client: Client, filename: str, explicit_ns: bool, flags: LogFlags, s: Streams
) -> int:
    manifests = load_tasks(filename)
    if flags.follow and len(manifests) != 1:
        raise CtlError(f"--follow needs exactly one Task; {filename} has {len(manifests)}")
    created: list[tuple[Client, str]] = []
    for m in manifests:
        ns = namespace_of(m, client.namespace, explicit_ns)
        c = client if ns == client.namespace else Client(client.kube, ns)
        obj = await c.create_task(m)
        name = str(obj["metadata"]["name"])
        s.out.write(f"task/{name} created\n")
        s.out.flush()
        created.append((c, name))
    if not flags.follow:
        return 0
    c, name = created[0]
    return await cmd_logs(c, name, replace(flags, step=None, sidecar=None, attempt=None), s)


# -- cancel ---------------------------------------------------------------------------------


async def cmd_cancel(client: Client, name: str, s: Streams) -> int:
    task = _decode(await client.get_task(name))
    if task.final:
        s.out.write(f"task/{name} already finished: {task.word}\n")
        return 0
    try:
        patched = await client.cancel_task(name)
    except CtlError as exc:
        raise CtlError(f"cannot cancel task/{name}: {exc}") from None
    if (patched.get("spec") or {}).get("cancel") is not True:
        # a CRD without the field prunes it: the patch "succeeds" and changes nothing
        raise CtlError(
            f"cannot cancel task/{name}: the cluster's Task CRD has no spec.cancel "
            "(upgrade it: kubectl apply --server-side -f charts/taskflow/crds/)"
        )
    s.out.write(f"task/{name} cancel requested\n")
    return 0


# -- wait -----------------------------------------------------------------------------------


async def cmd_wait(client: Client, name: str, limit: float | None, s: Streams) -> int:
    last: TaskView | None = None
    with anyio.move_on_after(limit) as scope:
        async for task in client.task_changes(name):
            last = task
            if task.final:
                break
    if scope.cancelled_caught or last is None or not last.final:
        where = ""
        if last is not None:
            progress = f" {last.status.progress}" if last.status.progress else ""
            where = f" ({last.word}{progress})"
        waited = format_duration(limit or 0)
        raise CtlError(f"timed out after {waited} waiting for task/{name}{where}")
    att = attempt_of(last, last.current_attempt)
    assert att is not None  # the current attempt always exists
    s.out.write(summary(name, att, s.out_colour) + "\n")
    return fsm.exit_code(att)
