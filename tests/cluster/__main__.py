"""`python -m tests.cluster build|up [--tier control-plane|full]|restart COMPONENT [--kill]|
down|status`."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from . import binaries, config, harness
from .errors import HarnessError


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... status | head` is fine
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or find cached) binaries and test images")
    p_up = sub.add_parser("up", help="start the cluster in the background")
    p_up.add_argument("--tier", choices=config.TIERS, default="control-plane")
    p_restart = sub.add_parser(
        "restart", help="restart one component, keeping all state (for failure tests)"
    )
    p_restart.add_argument(
        "component",
        help="etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, "
        "containerd, kube-proxy, registry or auth-registry",
    )
    p_restart.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    sub.add_parser("down", help="stop everything `up` started and delete its state")
    sub.add_parser("status", help="say what runs")
    p_reap = sub.add_parser("reap-after", help=argparse.SUPPRESS)
    p_reap.add_argument("pid", type=int)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            start = time.monotonic()
            print(f"binaries: {binaries.ensure_binaries()}")
            from . import images

            print(f"images: {images.ensure_seed()}")
            print(f"ready in {time.monotonic() - start:.1f}s")
        elif args.cmd == "up":
            current = harness.running()
            if current is not None and (current.tier == "full" or current.tier == args.tier):
                print(f"a {current.tier} cluster is already running (owner: {current.owner})")
            else:
                start = time.monotonic()
                current = harness.up(args.tier)
                print(f"{current.tier} cluster up in {time.monotonic() - start:.1f}s")
            if current.registry:
                print(f"registry: {current.registry}")
            print(f"export KUBECONFIG={current.kubeconfig}")
        elif args.cmd == "restart":
            seconds = harness.restart(args.component, kill=args.kill)
            how = "killed and restarted" if args.kill else "restarted"
            print(f"{args.component} {how}; serving again after {seconds:.1f}s")
        elif args.cmd == "down":
            start = time.monotonic()
            found = harness.down()
            print(f"stopped in {time.monotonic() - start:.1f}s" if found else "nothing to stop")
        elif args.cmd == "reap-after":
            harness.reap_after(args.pid)
        else:
            print(harness.status())
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
