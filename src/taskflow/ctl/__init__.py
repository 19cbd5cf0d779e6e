"""``kubectl taskflow``: the people's commands (logs, run, get, describe, cancel, wait).

A kubectl plugin (the ``kubectl-taskflow`` console script); the operator's own command is
``taskflow`` (:mod:`taskflow.cli`). Nothing imports this package.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from taskflow import __version__

__all__ = ["build_parser", "main"]

_PROG = "kubectl taskflow"

_DESCRIPTION = """\
Follow, start and inspect taskflow Tasks (api.practice.com/v1alpha1): every step's log in
order, live, with one command.
"""

_EPILOG = """\
examples:
  kubectl taskflow logs -f build              # every step's output, live, in order
  kubectl taskflow run -f task.yaml --follow  # create a Task, stream it, exit with its result
  kubectl taskflow get -w                     # Tasks and their steps (✓ done, ▸ running)
  kubectl taskflow describe build             # steps, sidecars, condition, attempts, Events
  kubectl taskflow wait build --timeout 10m && echo ok
  kubectl taskflow cancel build

Options --kubeconfig, --context and -n/--namespace work as kubectl's (the namespace
defaults to the context's). Exit status: 0 on success (for logs -f, run --follow and wait:
only when the Task ended Successful), 1 on a failed Task or an error, 2 on a usage error.
"""

_LOGS_EPILOG = """\
examples:
  kubectl taskflow logs build                 # what the steps printed so far
  kubectl taskflow logs -f build              # wait for each step, stream it, exit with the result
  kubectl taskflow logs -f build --step test  # only step "test"
  kubectl taskflow logs build --attempt 1     # the first attempt of a retried Task
  kubectl taskflow logs -f build --sidecar db # sidecar "db" of the Task's pod, until it stops
  kubectl taskflow logs build --no-prefix | grep ERROR

Lines carry the step's name as a prefix ([step]), coloured on a terminal (set NO_COLOR to
turn colour off). Notes (what -f waits for, a deleted pod) and the final one-line summary
(status, reason, duration) go to stderr, the steps' output to stdout.
exit status: with -f, 0 only when the Task ended Successful; without -f, 0 unless the Task
ended otherwise; 1 on an error. A step without a log (its pod deleted, its node gone) is
named on stderr and the others are still printed. With --sidecar: 0 when its log was read
(-f waits for it to start and follows it until the kubelet stops it, after the last step).
"""

_RUN_EPILOG = """\
examples:
  kubectl taskflow run -f task.yaml                      # prints task/NAME created
  kubectl taskflow run -f task.yaml --follow             # ... then streams it like logs -f
  kubectl taskflow -n ci run -f - --follow < task.yaml   # from stdin, metadata.generateName works

With --follow the exit status is the Task's result (0 only when Successful): the one-liner
for scripts and CI.
"""

_GET_EPILOG = """\
examples:
  kubectl taskflow get                 # the Tasks of the namespace
  kubectl taskflow get build -w        # one Task, a new line on every change
  kubectl taskflow get -A              # every namespace

STEPS has one sign per step: ✓ done, ✗ failed, ▸ running, · waiting, - not run
(+ x > . - when the terminal cannot show them).
"""

_DESCRIBE_EPILOG = """\
examples:
  kubectl taskflow describe build
"""

_CANCEL_EPILOG = """\
examples:
  kubectl taskflow cancel build        # sets spec.cancel; the Task ends Cancelled
"""

_WAIT_EPILOG = """\
examples:
  kubectl taskflow wait build                      # until it is final
  kubectl taskflow wait build --timeout 5m || kubectl taskflow logs build

Exit status 0 only when the Task ended Successful; 1 when it ended otherwise or the timeout
passed first.
"""


def _attempt(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("attempts count from 1")
    return n


def _timeout(text: str) -> float:
    from taskflow.ctl._format import parse_timeout

    try:
        return parse_timeout(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cluster_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """kubectl's connection flags, accepted before and after the command (after it, they
    override: defaults are SUPPRESSed there so an absent flag does not reset one given
    before)."""
    d: dict[str, Any] = {"default": None} if top else {"default": argparse.SUPPRESS}
    g = p.add_argument_group("cluster")
    g.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file", **d)
    g.add_argument("--context", help="kubeconfig context", **d)
    g.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's)", **d
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"taskflow {__version__}")
    _cluster_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_: str, epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _cluster_options(p, top=False)
        return p

    logs = add("logs", "print the steps' output in order; -f follows it live", _LOGS_EPILOG)
    logs.add_argument("task", metavar="TASK")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="wait for each step, stream it until it ends"
    )
    _log_options(logs)
    which = logs.add_mutually_exclusive_group()
    which.add_argument("--step", metavar="NAME", help="only this step")
    which.add_argument(
        "--sidecar", metavar="NAME", help="the log of this sidecar instead of the steps'"
    )
    logs.add_argument(
        "--attempt", type=_attempt, metavar="N", help="attempt N of a retried Task (default: now)"
    )

    run = add("run", "create a Task from a file, and with --follow stream it", _RUN_EPILOG)
    run.add_argument(
        "-f", "--filename", required=True, metavar="FILE", help="Task manifest; '-' reads stdin"
    )
    run.add_argument(
        "--follow", action="store_true", help="stream its logs and exit with its result"
    )
    _log_options(run)

    get = add("get", "list Tasks with their steps' progress", _GET_EPILOG)
    get.add_argument("task", metavar="TASK", nargs="?")
    get.add_argument("-w", "--watch", action="store_true", help="print a line on every change")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="Tasks of every namespace")

    desc = add(
        "describe",
        "show a Task's steps, sidecars, condition, attempts and recent Events",
        _DESCRIBE_EPILOG,
    )
    desc.add_argument("task", metavar="TASK")

    cancel = add("cancel", "stop a running Task (its status becomes Cancelled)", _CANCEL_EPILOG)
    cancel.add_argument("task", metavar="TASK")

    wait = add("wait", "wait until a Task is final; exit 0 only if Successful", _WAIT_EPILOG)
    wait.add_argument("task", metavar="TASK")
    wait.add_argument(
        "--timeout",
        type=_timeout,
        metavar="DURATION",
        help="give up after this long: 90s, 5m, 1h30m (default: no limit)",
    )
    return parser


def _log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timestamps", action="store_true", help="each line's time (the kubelet's)")
    p.add_argument("--no-prefix", action="store_true", help="no [step] before each line")


async def _dispatch(args: argparse.Namespace, streams: Any) -> int:
    from taskflow.ctl import _commands as c
    from taskflow.ctl._client import Client, open_cluster, resolve

    target = resolve(args.kubeconfig, args.context, args.namespace)
    kube = await open_cluster(target)
    try:
        client = Client(kube, target.namespace)
        flags = c.LogFlags(
            follow=bool(getattr(args, "follow", False)),
            step=getattr(args, "step", None),
            sidecar=getattr(args, "sidecar", None),
            attempt=getattr(args, "attempt", None),
            timestamps=bool(getattr(args, "timestamps", False)),
            prefix=not getattr(args, "no_prefix", False),
        )
        commands: dict[str, Callable[[], Awaitable[int]]] = {
            "logs": lambda: c.cmd_logs(client, args.task, flags, streams),
            "run": lambda: c.cmd_run(
                client, args.filename, args.namespace is not None, flags, streams
            ),
            "get": lambda: c.cmd_get(
                client,
                args.task,
                watch=args.watch,
                all_namespaces=args.all_namespaces,
                s=streams,
            ),
            "describe": lambda: c.cmd_describe(client, args.task, streams),
            "cancel": lambda: c.cmd_cancel(client, args.task, streams),
            "wait": lambda: c.cmd_wait(client, args.task, args.timeout, streams),
        }
        return await commands[args.command]()
    finally:
        await kube.close()


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` in ``exc`` (task groups wrap errors in exception groups)."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    import anyio

    from taskflow.ctl._commands import Streams
    from taskflow.ctl._format import use_colour

    # kubernetes-asyncio logs config problems as warnings; ours is the one line that says it
    logging.getLogger("kubernetes_asyncio").setLevel(logging.CRITICAL)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    streams = Streams(
        out=sys.stdout,
        err=sys.stderr,
        out_colour=use_colour(sys.stdout.isatty(), os.environ),
        err_colour=use_colour(sys.stderr.isatty(), os.environ),
    )
    from taskflow.ctl._client import CtlError

    try:
        code: int = anyio.run(_dispatch, args, streams, backend="asyncio")
        return code
    except BaseException as exc:
        if _find(exc, KeyboardInterrupt) is not None:
            return 130
        if _find(exc, BrokenPipeError) is not None:  # `... | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        ctl = _find(exc, CtlError)
        if ctl is None and not isinstance(exc, Exception | BaseExceptionGroup):
            raise  # SystemExit and the like
        message = str(ctl) if ctl is not None else f"unexpected {type(exc).__name__}: {exc}"
        sys.stdout.flush()
        sys.stderr.write(f"error: {message}\n")
        return 1
