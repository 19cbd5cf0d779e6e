"""Command line: ``taskflow-agent step ...`` and ``taskflow-agent install DIR``.

Parsing is pure (``parse``); ``main`` dispatches. Hand-written rather than argparse: argparse
pulls in gettext and friends, which costs start-up time in every step container, and this
grammar is small (no ``re`` either, for the same reason). Usage errors exit 2, other fatal
errors 1, each with one line on stderr prefixed ``taskflow-agent: `` (the only output the
agent ever makes itself).
"""

from __future__ import annotations

import os

from taskflow_agent._args import (
    KUBELET_MESSAGE_MAX,
    MAX_RETRIES,
    InstallArgs,
    StepArgs,
    print_error,
)
from taskflow_agent._duration import parse_duration
from taskflow_agent._substitute import is_result_name, is_step_name

USAGE = """usage: taskflow-agent step --name NAME [--prev NAME] [--timeout DURATION]
         [--retries N] [--retry-delay DURATION]
         [--grace DURATION] [--on-error continue|stopAndFail] [--result NAME]...
         [--script PATH] [--termination-path PATH] [--run-dir DIR]
         [--message-limit BYTES] [--wait auto|inotify|poll] [--poll-interval DURATION]
         [--arch PLATFORM=N]... -- ARGV...
       taskflow-agent install DIR [--source FILE]"""

ON_ERROR = ("continue", "stopAndFail")


class UsageError(Exception):
    pass


def _duration(flag: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None


def parse(argv: list[str]) -> StepArgs | InstallArgs:
    """The command in ``argv`` (without the program name); UsageError on anything else."""
    if not argv:
        raise UsageError("missing command (step or install)")
    command, rest = argv[0], argv[1:]
    if command == "install":
        return _parse_install(rest)
    if command == "step":
        return _parse_step(rest)
    raise UsageError(f"unknown command {command!r} (step or install)")


def _parse_install(rest: list[str]) -> InstallArgs:
    if len(rest) == 1:
        return InstallArgs(rest[0], None)
    if len(rest) == 3 and rest[1] == "--source":
        return InstallArgs(rest[0], rest[2])
    raise UsageError("install takes DIR [--source FILE]")


def _parse_step(rest: list[str]) -> StepArgs:
    a = StepArgs()
    i = 0
    while i < len(rest):
        if rest[i] == "--":
            a.argv = [os.fsencode(x) for x in rest[i + 1 :]]
            break
        flag, value, i = _option(rest, i)
        if flag in _TEXT:
            setattr(a, _TEXT[flag], value)
        elif flag in _DURATIONS:
            setattr(a, _DURATIONS[flag], _duration(flag, value))
        elif flag in _OPTIONS:
            _OPTIONS[flag](a, flag, value)
        else:
            raise UsageError(f"unknown option {flag!r}")
    else:
        raise UsageError("missing '--' before the step's command")
    _check_step(a)
    if a.timeout == 0:
        a.timeout = None  # as Tekton: 0 = no timeout
    return a


def _option(rest: list[str], i: int) -> tuple[str, str, int]:
    """The option at ``rest[i]`` (``--flag=value`` or ``--flag value``), its value, and the
    index after them."""
    flag, eq, inline = rest[i].partition("=")
    if eq:
        return flag, inline, i + 1
    if i + 1 < len(rest):
        return flag, rest[i + 1], i + 2
    raise UsageError(f"{flag} needs a value")


def _check_step(a: StepArgs) -> None:
    """What no single option can check: the names, and ARGV against --script and --arch."""
    for label, step in (("--name", a.name), ("--prev", a.prev)):
        if step is not None and not is_step_name(os.fsencode(step)):
            raise UsageError(f"{label} {step!r} is not a step name (a DNS label)")
    if a.script is None and not a.argv:
        raise UsageError("no command after '--' (and no --script)")
    if a.arches and (a.script is not None or sum(n for _, n in a.arches) != len(a.argv)):
        raise UsageError("--arch lengths must add up to ARGV's (and exclude --script)")


def _on_error(a: StepArgs, flag: str, value: str) -> None:
    if value not in ON_ERROR:
        raise UsageError(f"--on-error must be continue or stopAndFail, not {value!r}")
    a.on_error = value


def _result(a: StepArgs, flag: str, value: str) -> None:
    if not is_result_name(os.fsencode(value)):
        raise UsageError(f"--result {value!r}: letters, digits, '-' and '_' only")
    a.results.append(value)


def _wait(a: StepArgs, flag: str, value: str) -> None:
    if value not in ("auto", "inotify", "poll"):
        raise UsageError(f"--wait must be auto, inotify or poll, not {value!r}")
    a.wait = value


def _message_limit(a: StepArgs, flag: str, value: str) -> None:
    if not (value.isascii() and value.isdigit() and int(value) > 0):
        raise UsageError(f"--message-limit must be a number of bytes, not {value!r}")
    # the kubelet never reads more, whatever the pod's budget
    a.message_limit = min(int(value), KUBELET_MESSAGE_MAX)


def _retries(a: StepArgs, flag: str, value: str) -> None:
    if not (value.isascii() and value.isdigit() and int(value) <= MAX_RETRIES):
        raise UsageError(f"--retries must be a number from 0 to {MAX_RETRIES}, not {value!r}")
    a.retries = int(value)


def _arch(a: StepArgs, flag: str, value: str) -> None:
    platform, eq, count = value.partition("=")
    if not (eq and platform and count.isdigit() and int(count) > 0):
        raise UsageError(f"--arch {value!r}: want PLATFORM=N (amd64=2, arm/v7=1)")
    a.arches.append((platform, int(count)))


#: Options whose value is kept as given: flag -> StepArgs attribute.
_TEXT = {
    "--name": "name",
    "--prev": "prev",
    "--script": "script",
    "--termination-path": "termination_path",
    "--run-dir": "run_dir",
}

#: Options whose value is a duration (seconds): flag -> StepArgs attribute.
_DURATIONS = {
    "--timeout": "timeout",
    "--grace": "grace",
    "--poll-interval": "poll_interval",
    "--retry-delay": "retry_delay",
}

#: The other options: flag -> what checks its value and records it (the flag is passed for
#: the error message).
_OPTIONS = {
    "--on-error": _on_error,
    "--result": _result,
    "--wait": _wait,
    "--message-limit": _message_limit,
    "--retries": _retries,
    "--arch": _arch,
}


def main(argv: list[str]) -> int:
    if argv[:1] == ["step"]:
        from taskflow_agent import _signals

        _signals.block()  # first: a signal from now on waits for the code that handles it
    try:
        args = parse(argv)
    except UsageError as e:
        print_error(f"{e}\n{USAGE}")
        return 2
    try:
        if isinstance(args, InstallArgs):
            from taskflow_agent._install import install

            install(args.directory, args.source)
            return 0
        from taskflow_agent._step import run_step

        return run_step(args)
    except OSError as e:
        print_error(str(e))
        return 1
