"""The ``taskflow`` command: ``run`` the operator, print the ``crd`` and the admission
``policy``, ``render`` a Task's pod."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any, Literal, TextIO, TypeAlias

import msgspec

from taskflow import __version__

log = logging.getLogger("taskflow")

DESCRIPTION = """\
taskflow runs the steps of a Task (api.practice.com/v1alpha1) one after another in a
single pod and reports their progress in the Task's status.
"""

RUN_EPILOG = """\
examples:
  taskflow run                                  # all namespaces, kubeconfig or in-cluster
  taskflow run -n team-a -n team-b --workers 8  # only these namespaces
  taskflow run --leader-elect --lease-namespace taskflow-system

endpoints (--bind-address): /healthz (watch streams fresh), /readyz (initial LISTs done),
/metrics (Prometheus). SIGTERM/SIGINT stop the operator gracefully (the lease is released).
exit status: 0 after a signal, 1 when a watch stream cannot recover, the leadership is
lost, or the cluster cannot be reached.
"""

#: Help texts of the Settings fields (any other field still gets a flag).
SETTINGS_HELP = {
    "image_pull_timeout": "fail a step whose image cannot be pulled for this long "
    "(ErrImagePull/ImagePullBackOff; InvalidImageName, an image the registry does not "
    "have and one without the node's platform fail at once)",
    "config_error_timeout": "fail a step stuck in CreateContainerConfigError/"
    "CreateContainerError (missing Secret/ConfigMap) for this long",
    "default_timeout": "fail a Task without spec.timeout (TimedOut) this long after its "
    "creation; 0 = never",
    "default_ttl_after_finished": "delete a finished Task without "
    "spec.ttlSecondsAfterFinished this long after it finished",
}


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def _non_negative(text: str) -> float:
    x = float(text)
    if x < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return x


def _bind_address(text: str) -> str:
    from taskflow.server import parse_bind_address

    try:
        parse_bind_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    """Seconds, as a number (``90``) or a Go-style duration (``1m30s``)."""
    from taskflow.api.duration import parse_duration

    try:
        x = float(text)
    except ValueError:
        try:
            x = parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if x < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return x


#: Settings fields that are not durations (each has its own flag in ``run``'s "executor").
NON_DURATION_SETTINGS = ("default_executor", "agent_image")


def _settings_fields() -> list[tuple[str, Any]]:
    """(name, default) of every duration (seconds) among the Settings fields."""
    from taskflow.settings import Settings

    return [
        (f.name, f.default)
        for f in msgspec.structs.fields(Settings)
        if f.name not in NON_DURATION_SETTINGS
    ]


#: What ``add_subparsers`` returns (argparse does not name the type publicly).
_Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskflow",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"taskflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_crd(sub)
    _add_policy(sub)
    _add_render(sub)
    return parser


def _add_run(sub: _Subcommands) -> None:
    run = sub.add_parser(
        "run",
        help="run the operator",
        description="Watch Tasks and their pods and drive every Task to Successful or Failure.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # One function per group, in the order ``taskflow run --help`` lists them.
    _cluster_flags(run)
    _reconciling_flags(run)
    _leader_election_flags(run)
    _timeout_flags(run)
    _executor_flags(run)
    _serving_flags(run)


def _cluster_flags(run: argparse.ArgumentParser) -> None:
    """Which cluster, and which of its namespaces."""
    conn = run.add_argument_group("cluster")
    conn.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster "
        "service account)",
    )
    conn.add_argument("--context", help="kubeconfig context to use (default: its current one)")
    conn.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace; repeat for several (default: all namespaces)",
    )


def _reconciling_flags(run: argparse.ArgumentParser) -> None:
    """How fast and how often Tasks are reconciled."""
    work = run.add_argument_group("reconciling")
    work.add_argument(
        "--workers",
        type=_positive_int,
        default=64,
        metavar="N",
        help="Tasks reconciled concurrently (default: %(default)s)",
    )
    work.add_argument(
        "--qps",
        type=_non_negative,
        default=None,
        help="API requests per second, client-side (as client-go; watches and the Lease are "
        "not counted), 0 = unlimited (default: unlimited when the API server does API "
        "Priority and Fairness, else 50)",
    )
    work.add_argument(
        "--burst",
        type=_positive_int,
        default=None,
        help="API requests allowed in a burst above --qps (default: 100)",
    )
    work.add_argument(
        "--stream-failure-threshold",
        type=_non_negative,
        default=120.0,
        metavar="SECONDS",
        help="a watch stream failing this long marks /healthz failed and the operator exits "
        "(default: %(default)s)",
    )
    work.add_argument(
        "--resync-period",
        type=_non_negative,
        default=600.0,
        metavar="SECONDS",
        help="re-check every unfinished Task this often even without a watch event, "
        "0 = never (default: %(default)s)",
    )


def _leader_election_flags(run: argparse.ArgumentParser) -> None:
    """Several replicas, one of them working."""
    le = run.add_argument_group("leader election")
    le.add_argument(
        "--leader-elect",
        action="store_true",
        help="run several replicas; only the holder of the Lease reconciles",
    )
    le.add_argument(
        "--lease-namespace",
        metavar="NS",
        help="namespace of the Lease (default: the operator's own namespace in a pod, "
        "else 'default')",
    )
    le.add_argument(
        "--lease-name",
        default="taskflow-leader",
        metavar="NAME",
        help="name of the Lease (default: %(default)s)",
    )
    le.add_argument(
        "--lease-duration",
        type=_non_negative,
        default=15.0,
        metavar="SECONDS",
        help="how long standbys wait before taking over an unrenewed Lease (default: %(default)s)",
    )
    le.add_argument(
        "--renew-deadline",
        type=_non_negative,
        default=10.0,
        metavar="SECONDS",
        help="the leader gives up (and exits) if it cannot renew for this long "
        "(default: %(default)s)",
    )
    le.add_argument(
        "--retry-period",
        type=_non_negative,
        default=2.0,
        metavar="SECONDS",
        help="interval between Lease renewals/attempts (default: %(default)s)",
    )


def _timeout_flags(run: argparse.ArgumentParser) -> None:
    """One flag per duration among the Settings fields."""
    timeouts = run.add_argument_group("Task timeouts (seconds, or durations such as 1h30m)")
    for name, default in _settings_fields():
        shown = "off" if default is None else f"{default:g}"
        timeouts.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"setting_{name}",
            type=_seconds,
            default=default,
            metavar="DURATION",
            help=f"{SETTINGS_HELP.get(name, name.replace('_', ' '))} (default: {shown})",
        )


def _executor_flags(run: argparse.ArgumentParser) -> None:
    """How steps run: the agent or the kubelet alone."""
    executor = run.add_argument_group("executor (how a Task's steps run)")
    executor.add_argument(
        "--default-executor",
        choices=("agent", "kubelet"),
        default="agent",
        help="the executor of a Task without spec.executor whose steps use no timeout, "
        "onError or results (default: %(default)s)",
    )
    executor.add_argument(
        "--agent-image",
        default="",
        metavar="REF",
        help="the image holding /taskflow-agent, installed into agent pods "
        f"(default: taskflow/agent:{__version__})",
    )
    executor.add_argument(
        "--registry-mirror",
        dest="registry_mirrors",
        type=_mirror,
        action="append",
        default=[],
        metavar="HOST=URL",
        help="read images of registry HOST (docker.io, 127.0.0.1:5000) from URL (with its "
        "scheme) when looking up an agent step's ENTRYPOINT/CMD; repeatable. Without one: "
        "https, or http for localhost and 127.0.0.0/8",
    )


def _serving_flags(run: argparse.ArgumentParser) -> None:
    """The health and metrics endpoints, and the logs."""
    from taskflow import logs

    obs = run.add_argument_group("serving and logging")
    obs.add_argument(
        "--bind-address",
        type=_bind_address,
        default=":8080",
        metavar="HOST:PORT",
        help="address of /healthz, /readyz and /metrics; '0' disables (default: %(default)s)",
    )
    obs.add_argument(
        "--log-format", choices=logs.FORMATS, default="text", help="(default: %(default)s)"
    )
    obs.add_argument(
        "--log-level", choices=logs.LEVELS, default="info", help="(default: %(default)s)"
    )


def _add_crd(sub: _Subcommands) -> None:
    """``taskflow crd``."""
    sub.add_parser(
        "crd",
        help="print the CustomResourceDefinition (YAML)",
        description="Print the CRD tasks.api.practice.com, generated from the API models. "
        "Apply it with: taskflow crd | kubectl apply -f -",
    )


def _add_policy(sub: _Subcommands) -> None:
    """``taskflow policy``."""
    sub.add_parser(
        "policy",
        help="print the ValidatingAdmissionPolicy for result references (YAML)",
        description="Print the ValidatingAdmissionPolicy and its binding that reject a Task "
        "whose $(steps.STEP.results.NAME) references cannot resolve, at apply. "
        "Apply it with: taskflow policy | kubectl apply -f -",
    )


def _add_render(sub: _Subcommands) -> None:
    """``taskflow render -f FILE``."""
    render = sub.add_parser(
        "render",
        help="print the pod the operator would create for a Task (no cluster needed)",
        description="Print, as YAML, the Pod the operator would create for each Task in FILE.",
    )
    render.add_argument(
        "-f",
        "--filename",
        required=True,
        metavar="FILE",
        help="a Task manifest (YAML or JSON, may hold several documents); '-' reads stdin",
    )
    render.add_argument(
        "--default-executor",
        choices=("agent", "kubelet"),
        default="agent",
        help="as `taskflow run --default-executor` (default: %(default)s)",
    )


# -- commands -------------------------------------------------------------------------------


def cmd_crd(out: TextIO) -> int:
    from taskflow.api.crd import crd_yaml

    out.write(crd_yaml())
    return 0


def cmd_policy(out: TextIO) -> int:
    from taskflow.api.policy import admission_policy_yaml

    out.write(admission_policy_yaml())
    return 0


def cmd_render(
    filename: str, out: TextIO, err: TextIO, default_executor: Literal["agent", "kubelet"] = "agent"
) -> int:
    import yaml

    from taskflow import api, render
    from taskflow.inputs import read_documents
    from taskflow.settings import Settings

    try:
        docs = read_documents(filename)
    except (OSError, yaml.YAMLError) as exc:
        err.write(f"taskflow render: {exc}\n")
        return 1
    tasks = [d for d in docs if isinstance(d, dict) and d.get("kind", api.KIND) == api.KIND]
    if not tasks:
        err.write(f"taskflow render: no Task in {filename}\n")
        return 1
    pods = []
    for doc in tasks:
        try:
            settings = Settings(default_executor=default_executor)
            pods.append(render.render_pod(api.decode_task(doc), settings))
        except ValueError as exc:
            name = (doc.get("metadata") or {}).get("name", "?")
            err.write(f"taskflow render: Task {name}: {exc}\n")
            return 1
    out.write(yaml.dump_all(pods, Dumper=_literal_dumper(), sort_keys=False))
    return 0


def _literal_dumper() -> Any:
    """A safe YAML dumper writing multi-line strings (scripts) as ``|`` blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value and not any(c in value for c in "\t\r") else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, str_representer)
    return Dumper


def _mirror(text: str) -> tuple[str, str]:
    host, eq, url = text.partition("=")
    if not eq or not host or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            f"{text!r}: want HOST=URL, the URL with http:// or https://"
        )
    return host, url


def run_config(args: argparse.Namespace) -> Any:
    """The :class:`OperatorConfig` for parsed ``run`` arguments.

    Raises ValueError for values that are each fine but not together (the lease timings).
    """
    from taskflow.engine.leader import LeaseConfig
    from taskflow.engine.operator import OperatorConfig
    from taskflow.engine.registry import RegistryConfig
    from taskflow.settings import Settings

    settings = Settings(
        **{
            name: getattr(args, f"setting_{name}")
            for name, _ in _settings_fields()
            if hasattr(args, f"setting_{name}")
        },
        default_executor=args.default_executor,
        agent_image=args.agent_image,
    )
    return OperatorConfig(
        namespaces=tuple(dict.fromkeys(args.namespaces)),
        workers=args.workers,
        qps=args.qps,
        burst=args.burst,
        lease=LeaseConfig(
            namespace=args.lease_namespace,
            name=args.lease_name,
            duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
        if args.leader_elect
        else None,
        bind_address=args.bind_address,
        stream_failure_threshold=args.stream_failure_threshold,
        resync_period=args.resync_period,
        settings=settings,
        registry=RegistryConfig(mirrors=dict(args.registry_mirrors)),
    )


async def _serve(args: argparse.Namespace, config: Any) -> int:
    import anyio

    from taskflow.engine.kube import connect
    from taskflow.engine.operator import Operator

    try:
        kube = await connect(
            kubeconfig=args.kubeconfig,
            context=args.context,
            pool_size=2 * max(1, len(config.namespaces)) + config.workers + 8,
        )
    except Exception as exc:
        log.error("cannot load the cluster configuration: %s", exc)
        return 1
    operator = Operator(kube, config)
    stopped_by_signal = False
    try:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                nonlocal stopped_by_signal
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("%s received, shutting down", signal.Signals(signum).name)
                        stopped_by_signal = True
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(on_signal)
            await operator.run()
    except BaseExceptionGroup as group:
        for leaf in _leaves(group):
            log.error("fatal: %s: %s", type(leaf).__name__, leaf)
        return 1
    except Exception as exc:
        log.error("fatal: %s: %s", type(exc).__name__, exc)
        return 1
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
            await kube.close()
    return 0 if stopped_by_signal else 1


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(_leaves(exc))
        else:
            out.append(exc)
    return out


def cmd_run(args: argparse.Namespace, config: Any) -> int:
    """Run the operator with ``config`` (:func:`run_config` of ``args``)."""
    import anyio
    import prometheus_client

    from taskflow import logs
    from taskflow.engine import client_config

    client_config.lean()  # ~36 MB of kubernetes-asyncio the operator never calls
    logs.setup(args.log_format, args.log_level)
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        return anyio.run(
            _serve, args, config, backend="asyncio", backend_options={"use_uvloop": True}
        )
    except KeyboardInterrupt:  # a signal before the handler was installed
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            config = run_config(args)
        except ValueError as exc:
            parser.error(f"run: {exc}")
        return cmd_run(args, config)
    if args.command == "crd":
        return cmd_crd(sys.stdout)
    if args.command == "policy":
        return cmd_policy(sys.stdout)
    if args.command == "render":
        return cmd_render(args.filename, sys.stdout, sys.stderr, args.default_executor)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
