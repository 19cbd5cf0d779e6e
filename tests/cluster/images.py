"""Test images, built locally with buildah and pushed to the harness registry.

These are stand-ins, not the upstream images: busybox:1.28 is Debian's busybox-static,
alpine:3.12 is that busybox tree with Alpine's release files, the pause image is a
busybox shell waiting for SIGTERM, and devopscube/kubernetes-job-demo runs `/script.sh N`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import config
from .binaries import bin_path
from .errors import HarnessError
from .procs import Procs, http_ok, wait_for
from .registry import start_registry

SEED_VERSION = "1"  # bump when a recipe below changes
SEED_REGISTRY = config.SEED_REGISTRY
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
COREDNS_IMAGE = f"registry.k8s.io/coredns/coredns:{config.COREDNS_VERSION}"

_BASE = """FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""
PAUSE_SCRIPT = """#!/bin/sh
# pause stand-in: hold the pod's namespaces until told to stop
trap 'exit 0' TERM INT
while :; do sleep 2147483647 & wait $!; done
"""
JOB_SCRIPT = """#!/bin/sh
# stand-in for devopscube/kubernetes-job-demo: count N seconds, printing each, exit 0
n="${1:-10}"
echo "This Job will echo message $n times"
i=1
while [ "$i" -le "$n" ]; do
  echo "$i) Hello from the Job"
  sleep 1
  i=$((i + 1))
done
"""
OS_RELEASE = """NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.12.0
PRETTY_NAME="Alpine Linux v3.12 (taskflow test stand-in built from busybox)"
"""


def _buildah_home() -> Path:
    return config.cache_root() / "buildah"


def _buildah_env() -> dict[str, str]:
    """Own policy and registries.conf (local registries are plain http); buildah's default
    storage, so images committed by plain `buildah` can be used in FROM lines."""
    home = _buildah_home()
    home.mkdir(parents=True, exist_ok=True)
    policy = home / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    regs = [config.REGISTRY, SEED_REGISTRY, "localhost:35000"]
    conf = ['unqualified-search-registries = ["docker.io"]', 'short-name-mode = "permissive"']
    for prefix in ("docker.io", "registry.k8s.io"):
        conf += ["[[registry]]", f'prefix = "{prefix}"', f'location = "{config.REGISTRY}"']
        conf += ["insecure = true"]
    for reg in regs:
        conf += ["[[registry]]", f'location = "{reg}"', "insecure = true"]
    (home / "registries.conf").write_text("\n".join(conf) + "\n")
    return {
        **os.environ,
        "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
        "BUILDAH_ISOLATION": "chroot",
    }


def _buildah(*args: str) -> str:
    env = _buildah_env()
    argv = [bin_path("buildah"), *args]
    res = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise HarnessError(f"buildah {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return res.stdout


def build_containerfile(
    context_dir: str | Path,
    containerfile: str | Path = "Containerfile",
    target: str | None = None,
    tag: str = "taskflow:dev",
    build_args: Mapping[str, str] | None = None,
    *,
    registry: str = config.REGISTRY,
    extra_args: Sequence[str] = (),
) -> str:
    """Build `containerfile` (relative to `context_dir` unless absolute) with buildah and push
    it to `registry` (plain http). `tag` is `name:tag`; returns `registry/name:tag`.
    `FROM docker.io/...` / `registry.k8s.io/...` resolve to the harness registry. RUN steps
    use chroot isolation with the host's network; `extra_args` go to `buildah build`
    (e.g. `--volume /etc/ssl/certs:/certs:ro`)."""
    ref = f"{registry}/{tag}"
    cfile = Path(context_dir, containerfile)
    args = ["build", "--isolation", "chroot", "--signature-policy", _policy()]
    args += ["--format", "oci", "-f", str(cfile), "-t", ref]
    if target:
        args += ["--target", target]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    _buildah(*args, *extra_args, str(context_dir))
    _buildah("push", "--tls-verify=false", "--signature-policy", _policy(), ref, f"docker://{ref}")
    return ref


def _policy() -> str:
    return str(_buildah_home() / "policy.json")


def _busybox_rootfs(root: Path) -> None:
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "var", "home"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy2(bin_path("busybox"), root / "bin/busybox")
    applets = subprocess.run(
        [bin_path("busybox"), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = root / applet
        if not link.exists() and link.name != "busybox":
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")


def _recipes() -> dict[str, tuple[str, dict[str, str]]]:
    """tag -> (Containerfile tail, extra files in rootfs)."""
    return {
        "library/busybox:1.28": ('CMD ["sh"]\n', {}),
        "pause:3.10": (
            'ENTRYPOINT ["/pause"]\n',
            {"pause": PAUSE_SCRIPT},
        ),
        "library/alpine:3.12": (
            'CMD ["/bin/sh"]\n',
            {"etc/alpine-release": "3.12.0\n", "etc/os-release": OS_RELEASE},
        ),
        "devopscube/kubernetes-job-demo:latest": (
            'ENTRYPOINT ["/script.sh"]\n',
            {"script.sh": JOB_SCRIPT},
        ),
    }


def _build_seed_images(registry: str) -> list[str]:
    refs = []
    with tempfile.TemporaryDirectory(prefix="tf-images-") as tmp:
        for tag, (tail, files) in _recipes().items():
            ctx = Path(tmp, tag.replace("/", "_").replace(":", "_"))
            _busybox_rootfs(ctx / "rootfs")
            for rel, text in files.items():
                (ctx / "rootfs" / rel).write_text(text)
                if text.startswith("#!"):
                    (ctx / "rootfs" / rel).chmod(0o755)
            (ctx / "Containerfile").write_text(_BASE + tail)
            refs.append(build_containerfile(ctx, tag=tag, registry=registry))
        ctx = Path(tmp, "coredns")
        (ctx / "rootfs").mkdir(parents=True)
        shutil.copy2(bin_path("coredns"), ctx / "rootfs/coredns")
        (ctx / "Containerfile").write_text(
            'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/coredns"]\n'
        )
        tag = COREDNS_IMAGE.split("/", 1)[1]
        refs.append(build_containerfile(ctx, tag=tag, registry=registry))
    return refs


def seed_dir() -> Path:
    return config.cache_dir() / "registry-seed"


def ensure_seed() -> Path:
    """Registry storage holding every test image; built once per SEED_VERSION."""
    seed = seed_dir()
    stamp = seed / "seed.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(stamp.read_text()).get("version") == SEED_VERSION:
            return seed
    print("[cluster] building test images (busybox, pause, alpine, job-demo, coredns) ...")
    tmp = Path(tempfile.mkdtemp(prefix="seed-", dir=config.cache_dir()))
    procs = Procs(tmp / "run")
    try:
        start_registry(procs, tmp / "storage", SEED_REGISTRY, tmp / "run")
        wait_for(
            "seed registry",
            lambda: http_ok(f"http://{SEED_REGISTRY}/v2/"),
            20,
            procs=procs,
            name="registry",
        )
        refs = _build_seed_images(SEED_REGISTRY)
    finally:
        procs.stop("registry")
    shutil.rmtree(seed, ignore_errors=True)
    os.replace(tmp / "storage", seed)
    shutil.rmtree(tmp, ignore_errors=True)
    stamp.write_text(json.dumps({"version": SEED_VERSION, "images": refs}, indent=1))
    print(f"[cluster] test images ready: {', '.join(refs)}")
    return seed
