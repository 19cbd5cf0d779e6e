"""``logs`` (I/O): read the steps' container logs in the order :mod:`._follow` decides.

With ``-f`` a background task watches the Task and keeps the latest version; the main loop
asks :func:`._follow.decide` what to do after every change and after every stream. A
followed log stream has no idle timeout (a step may be silent for hours); what bounds it is
the Task: once the Task is final, a stream still open after :data:`FINAL_GRACE` seconds is
cut (the kubelet normally closes it when the container ends, well before).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp
import anyio
import msgspec

from taskflow.api import task_status
from taskflow.ctl import _follow as fsm
from taskflow.ctl._client import Client, CtlError, explain
from taskflow.ctl._format import LineSplitter, paint, step_prefix, summary
from taskflow.ctl._model import TaskView, attempt_of
from taskflow.engine.kube import ApiError

#: seconds a log stream may stay open once its Task is final
FINAL_GRACE = 10.0
#: idle limit of a log read without follow (the kubelet answers at once)
READ_TIMEOUT = 60.0
DIM = "2"


@dataclass
class Output:
    out: TextIO
    err: TextIO
    colour: bool  #: colour on ``out`` (step prefixes)
    err_colour: bool  #: colour on ``err`` (notes, the summary)
    prefix: bool = True
    timestamps: bool = False

    def note(self, text: str) -> None:
        self.err.write(paint(text, DIM, self.err_colour) + "\n")
        self.err.flush()


@dataclass
class _Shared:
    """What the watcher and the main loop share."""

    task: TaskView
    changed: anyio.Event = field(default_factory=anyio.Event)
    stream_scope: anyio.CancelScope | None = None


def log_path(namespace: str, pod: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{pod}/log"


async def read_log(
    client: Client,
    pod: str,
    step: str,
    *,
    follow: bool,
    timestamps: bool,
    emit: Callable[[list[str]], None],
    what: str = "step",
) -> tuple[fsm.Ended, str]:
    """Stream the log of container ``step`` (a step's, or a sidecar's: ``what``) to ``emit``
    (whole lines); how it ended and the server's message when it did not drain."""
    query: dict[str, str | int] = {"container": step}
    if follow:
        query["follow"] = "true"
    if timestamps:
        query["timestamps"] = "true"
    lines = LineSplitter()
    try:
        async with client.kube.stream(
            log_path(client.namespace, pod),
            query=query,
            read_timeout=None if follow else READ_TIMEOUT,
        ) as body:
            async for chunk in body.iter_any():
                emit(lines.feed(chunk))
    except ApiError as exc:
        emit(lines.flush())
        if exc.status == 404 and _names_pod(exc.body, pod):
            return fsm.Ended.POD_GONE, exc.message
        if exc.status == 404:  # e.g. the pod's node is gone: that step's log is lost
            return fsm.Ended.NO_LOG, exc.message
        if exc.status in (401, 403):  # no point going on: no other step can be read either
            raise CtlError(explain(exc)) from None
        # 400 "container ... is waiting to start"; 5xx: the kubelet cannot be reached...: that
        # step's log is lost, the others may not be
        return fsm.Ended.NO_LOG, exc.message or str(exc)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
        pass  # the pod went away mid-stream: what came is printed, the Task will say the rest
    except BrokenPipeError:
        raise  # our reader left (`| head`), not the server
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise CtlError(f"cannot read the log of {what} {step}: {exc}") from None
    emit(lines.flush())
    return fsm.Ended.DRAINED, ""


def _names_pod(body: bytes, pod: str) -> bool:
    """Whether a 404 is about the pod itself, not its node: a pod bound to a node that does
    not exist gets ``pods "<node name>" not found`` (kind "pods", the node's name)."""
    try:
        status = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    details = status.get("details") if isinstance(status, dict) else None
    return (
        isinstance(details, dict) and details.get("kind") == "pods" and details.get("name") == pod
    )


def _emitter(o: Output, step: str, index: int) -> Callable[[list[str]], None]:
    prefix = step_prefix(step, index, o.colour) if o.prefix else ""

    def emit(lines: list[str]) -> None:
        if lines:
            o.out.write("".join(f"{prefix}{line}\n" for line in lines))
            o.out.flush()

    return emit


async def show_logs(
    client: Client,
    name: str,
    opts: fsm.Options,
    o: Output,
    attempt: int | None = None,
) -> int:
    """Print the logs of Task ``name``; the exit code (:func:`._follow.exit_code`)."""
    if not opts.follow:
        task = await client.first_task(name)
        _check(task, opts, attempt)
        return await _drive(client, _Shared(task), opts, o, attempt)
    async with _watched(client, name) as shared:
        _check(shared.task, opts, attempt)
        return await _drive(client, shared, opts, o, attempt)


@asynccontextmanager
async def _watched(client: Client, name: str) -> AsyncIterator[_Shared]:
    """Task ``name``, kept up to date by a watch while the block runs; once it is final, a
    followed stream still open is cut :data:`FINAL_GRACE` seconds later."""
    async with anyio.create_task_group() as tg:
        changes = client.task_changes(name)
        shared = _Shared(await anext(changes))

        async def watch() -> None:
            async for task in changes:
                shared.task = task
                if task.final and shared.stream_scope is not None:
                    _bound(shared.stream_scope)
                shared.changed.set()

        tg.start_soon(watch)
        yield shared
        tg.cancel_scope.cancel()


def _check(task: TaskView, opts: fsm.Options, attempt: int | None) -> None:
    names = task.step_names()
    if opts.step is not None and names and opts.step not in names:
        raise CtlError(f"task/{task.name} has no step {opts.step!r} (steps: {', '.join(names)})")
    if attempt is not None and attempt > task.current_attempt and task.final:
        raise CtlError(f"task/{task.name} has no attempt {attempt} (it ran {task.current_attempt})")


async def _changed(shared: _Shared, task: TaskView) -> None:
    """Until the Task is newer than ``task`` (the version just decided on)."""
    shared.changed = anyio.Event()
    if shared.task is task:  # nothing new arrived while deciding
        await shared.changed.wait()


def _bound(scope: anyio.CancelScope) -> None:
    scope.deadline = min(scope.deadline, anyio.current_time() + FINAL_GRACE)


async def _drive(
    client: Client, shared: _Shared, opts: fsm.Options, o: Output, attempt: int | None
) -> int:
    cur = fsm.Cursor(attempt or shared.task.current_attempt)
    last_note = ""
    while True:
        task = shared.task
        action = fsm.decide(task, cur, opts)
        if isinstance(action, fsm.Stream):
            cur = await _stream(client, shared, task, action, cur, o)
        elif isinstance(action, fsm.Skip):
            if action.note:
                o.note(action.note)
            cur = fsm.advance(cur)
        elif isinstance(action, fsm.NextAttempt):
            o.note(action.note)
            cur = fsm.next_attempt(cur, action.number)
        elif isinstance(action, fsm.Wait):
            if action.note and action.note != last_note:
                o.note(action.note)
                last_note = action.note
            await _changed(shared, task)
        else:
            return _finish(action, task, o)


async def _stream(
    client: Client,
    shared: _Shared,
    task: TaskView,
    action: fsm.Stream,
    cur: fsm.Cursor,
    o: Output,
) -> fsm.Cursor:
    """Print one step's log as ``action`` (decided on ``task``) says; the cursor after it,
    by how the stream ended."""
    index = task.step_names().index(action.step) if action.step in task.step_names() else 0
    ended, message = await _read(
        client, shared, task, action.pod, action.step, action.follow, o, index, "step"
    )
    if ended is fsm.Ended.POD_GONE and not cur.pod_gone:
        o.note(
            f"pod {action.pod} is gone (deleted, or removed after the Task ended): "
            f"the logs of step {action.step} and later steps are lost"
        )
    elif ended is fsm.Ended.NO_LOG:
        o.note(f"step {action.step} has no log: {message}")
    return fsm.after_stream(cur, ended)


async def _read(
    client: Client,
    shared: _Shared,
    task: TaskView,
    pod: str,
    container: str,
    follow: bool,
    o: Output,
    index: int,
    what: str,
) -> tuple[fsm.Ended, str]:
    """:func:`read_log` of a step or sidecar (``what``) of ``task``, a followed stream cut
    once the Task has been final for a while (a cut stream counts as drained)."""
    with anyio.CancelScope() as scope:
        # only a followed stream waits for more; a plain read ends by itself
        shared.stream_scope = scope if follow else None
        if task.final and follow:
            _bound(scope)
        ended, message = await read_log(
            client,
            pod,
            container,
            follow=follow,
            timestamps=o.timestamps,
            emit=_emitter(o, container, index),
            what=what,
        )
    shared.stream_scope = None
    if scope.cancelled_caught:
        o.note(f"the log of {what} {container} was still open after the Task ended")
        return fsm.Ended.DRAINED, ""
    return ended, message


# -- a sidecar's log ------------------------------------------------------------------------


async def show_sidecar_log(
    client: Client, name: str, sidecar: str, o: Output, *, follow: bool, attempt: int | None
) -> int:
    """Print the log of sidecar ``sidecar`` in the pod of Task ``name``'s current attempt
    (or of ``attempt``); with ``follow``, wait for it to start and stream it until it
    stops. 0 when its log was read."""
    if not follow:
        shared = _Shared(await client.first_task(name))
        return await _sidecar_log(client, shared, sidecar, o, follow=False, attempt=attempt)
    async with _watched(client, name) as shared:
        return await _sidecar_log(client, shared, sidecar, o, follow=True, attempt=attempt)


def _check_sidecar(task: TaskView, sidecar: str) -> None:
    names = task.sidecar_names()
    if sidecar not in names:
        has = f"sidecars: {', '.join(names)}" if names else "it has no sidecars"
        raise CtlError(f"task/{task.name} has no sidecar {sidecar!r} ({has})")


async def _sidecar_log(
    client: Client, shared: _Shared, sidecar: str, o: Output, *, follow: bool, attempt: int | None
) -> int:
    _check_sidecar(shared.task, sidecar)
    number = attempt or shared.task.current_attempt
    last_note = ""
    while True:
        task = shared.task
        att = attempt_of(task, number)
        if att is None:
            raise CtlError(f"task/{task.name} has no attempt {number} (now {task.current_attempt})")
        # status.sidecars describes the current attempt only; an earlier one's pod has ended
        seen = next((c for c in task.sidecars() if c.name == sidecar), None)
        if number != task.current_attempt:
            seen = None
        ran = seen is None or seen.state != task_status.STEP_WAITING or seen.restarts > 0
        if att.pod is not None and ran:
            break
        why = ""
        if seen is not None and seen.reason:
            why = f" ({seen.reason}: {seen.message})" if seen.message else f" ({seen.reason})"
        if att.final:
            raise CtlError(f"sidecar {sidecar} of task/{task.name} never started{why}")
        if not follow:
            raise CtlError(f"sidecar {sidecar} of task/{task.name} has not started yet{why}")
        what = f"the pod of task/{task.name}" if att.pod is None else f"sidecar {sidecar} to start"
        note = f"waiting for {what}{why}"
        if note != last_note:
            o.note(note)
            last_note = note
        await _changed(shared, task)
    live = follow and seen is not None and seen.state == task_status.STEP_RUNNING and not att.final
    index = task.sidecar_names().index(sidecar)
    ended, message = await _read(client, shared, task, att.pod, sidecar, live, o, index, "sidecar")
    if ended is fsm.Ended.POD_GONE:
        o.note(f"pod {att.pod} is gone: the log of sidecar {sidecar} is lost")
    elif ended is fsm.Ended.NO_LOG:
        o.note(f"sidecar {sidecar} has no log: {message}")
    return 0 if ended is fsm.Ended.DRAINED else 1


def _finish(action: fsm.Finish, task: TaskView, o: Output) -> int:
    """Say why the logs end (an error, the attempt's summary); the exit code."""
    if action.note:
        o.err.write(f"error: {action.note}\n")
    if action.attempt is not None:
        o.err.write(summary(task.name, action.attempt, o.err_colour) + "\n")
    o.err.flush()
    return action.code
