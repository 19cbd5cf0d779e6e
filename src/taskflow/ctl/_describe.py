"""``describe TASK`` as text (pure): the Task, its steps and sidecars, the condition,
attempts, Events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflow.api import task_status
from taskflow.ctl._format import age, one_line, step_duration, table, task_duration
from taskflow.ctl._model import SidecarView, StepView, TaskView, span
from taskflow.status import format_start_at, parse_time

#: Events shown (the most recent ones)
MAX_EVENTS = 20


def _when(ts: str | None) -> str:
    if not ts:
        return ""
    try:
        return format_start_at(parse_time(ts))
    except ValueError:
        return ts


def _results(step: StepView) -> str:
    return ", ".join(f"{r.name}={one_line(r.value, 40)}" for r in step.results)


def _tries(task: TaskView, step: StepView) -> str:
    """``(attempt 3 of 3, earlier exit codes 1, 1)`` for a step that ran more than once."""
    if step.attempts is None or step.attempts < 2:
        return ""
    text = f"attempt {step.attempts}"
    allowed = task.step_tries(step.name)
    if allowed is not None and allowed >= step.attempts:  # else the spec is not the one run
        text += f" of {allowed}"
    if step.retried_exit_codes:  # left out when the agent's state had to be cut
        text += ", earlier exit codes " + ", ".join(map(str, step.retried_exit_codes))
    return f"({text})"


def _steps_table(task: TaskView, steps: list[StepView], now: datetime) -> str:
    rows = [
        [
            s.name,
            s.state,
            "" if s.exit_code is None else str(s.exit_code),
            _when(s.started_at),
            step_duration(s, now),
            " ".join(filter(None, (s.reason, _tries(task, s)))),
            _results(s),
        ]
        for s in steps
    ]
    headers: tuple[str, ...] = ("STEP", "STATE", "EXIT", "STARTED", "DURATION", "REASON", "RESULTS")
    if not any(r[6] for r in rows):  # no step has results: no empty column
        headers, rows = headers[:-1], [r[:-1] for r in rows]
    return table(headers, rows, indent="  ")


def _sidecars(sidecars: list[SidecarView]) -> str:
    """The kubelet's reason and message only while a sidecar waits or has ended: a running
    one that restarted tells why in its SidecarRestarted Events."""
    shown = [c.reason if c.state != task_status.STEP_RUNNING else None for c in sidecars]
    out = table(
        ("SIDECAR", "STATE", "READY", "RESTARTS", "EXIT", "REASON"),
        [
            [
                c.name,
                c.state,
                "true" if c.ready else "false",
                str(c.restarts),
                "" if c.exit_code is None else str(c.exit_code),
                reason or "",
            ]
            for c, reason in zip(sidecars, shown, strict=True)
        ],
        indent="  ",
    )
    for c in sidecars:
        if c.message and c.state != task_status.STEP_RUNNING:
            out += f"  {c.name}: {one_line(c.message, 200)}\n"
    return out


def _event_time(ev: dict[str, Any]) -> str:
    """The newest time an Event carries (core/v1 and events.k8s.io writers fill different
    fields)."""
    series = ev.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or ev.get("lastTimestamp")
        or ev.get("eventTime")
        or ev.get("firstTimestamp")
        or (ev.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def recent_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first, at most :data:`MAX_EVENTS` of the newest."""
    return sorted(events, key=_event_time)[-MAX_EVENTS:]


def describe(task: TaskView, events: list[dict[str, Any]], now: datetime) -> str:
    """``kubectl taskflow describe``: the Task's header, then one section after another."""
    return "".join(
        (
            _header(task, now),
            _steps_section(task, now),
            _condition_section(task, now),
            _attempts_section(task),
            _events_section(events, now),
        )
    )


def _header(task: TaskView, now: datetime) -> str:
    st = task.status
    lines = [
        f"Name:        {task.name}",
        f"Namespace:   {task.metadata.namespace}",
        f"Status:      {task.word}" + (f" ({st.progress})" if st.progress else ""),
    ]
    if task.current_attempt > 1 or st.attempts:
        lines.append(f"Attempt:     {task.current_attempt}")
    if task.spec.cancel and not task.final:
        lines.append("Cancel:      requested")
    lines += [
        f"Pod:         {st.pod_name or '<none>'}",
        f"Started:     {_when(st.start_time) or st.start_at or '<not yet>'}",
        f"Duration:    {task_duration(task, now) or '<not yet>'}",
        f"Created:     {age(task.metadata.creation_timestamp, now)} ago",
    ]
    return "\n".join(lines) + "\n"


def _steps_section(task: TaskView, now: datetime) -> str:
    """The steps (and their messages), then the sidecars when the Task has any."""
    st = task.status
    att_steps = list(st.steps) if st.steps else [StepView(name=n) for n in task.step_names()]
    out = "Steps:\n" + _steps_table(task, att_steps, now)
    for s in att_steps:
        if s.message:
            out += f"  {s.name}: {one_line(s.message, 200)}\n"
    sidecars = task.sidecars()
    if sidecars:
        out += "Sidecars:\n" + _sidecars(sidecars)
    return out


def _condition_section(task: TaskView, now: datetime) -> str:
    cond = task.status.condition()
    if cond is None:
        return "Condition:\n  <none>\n"
    since = age(cond.last_transition_time, now) if cond.last_transition_time else ""
    row = [cond.type, cond.status, cond.reason or "", since, one_line(cond.message, 200)]
    return "Condition:\n" + table(
        ("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"), [row], indent="  "
    )


def _attempts_section(task: TaskView) -> str:
    """Earlier attempts (spec.retries); nothing for a Task on its first."""
    if not task.status.attempts:
        return ""
    return "Attempts:\n" + table(
        ("ATTEMPT", "POD", "REASON", "STARTED", "DURATION", "MESSAGE"),
        [
            [
                str(a.attempt or i + 1),
                a.pod_name or "",
                a.reason or "",
                _when(a.start_time),
                span(a.start_time, a.completion_time) or "",
                one_line(a.message, 100),
            ]
            for i, a in enumerate(task.status.attempts)
        ],
        indent="  ",
    )


def _events_section(events: list[dict[str, Any]], now: datetime) -> str:
    shown = recent_events(events)
    if not shown:
        return "Events:\n  <none>\n"
    return "Events:\n" + table(
        ("TYPE", "REASON", "AGE", "FROM", "MESSAGE"),
        [
            [
                str(ev.get("type", "")),
                str(ev.get("reason", "")),
                age(_event_time(ev) or None, now),
                str(
                    (ev.get("source") or {}).get("component") or ev.get("reportingComponent") or ""
                ),
                one_line(str(ev.get("message", "")), 200),
            ]
            for ev in shown
        ],
        indent="  ",
    )
