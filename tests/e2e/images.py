"""The operator image pipeline: a local Python base, the Containerfile's targets, a push.

No outside registry is reachable where the tests run, so the official Python image cannot be
pulled. Instead a Python base image is built from Debian packages with ``mmdebstrap``
(bookworm, ``python3`` 3.11, ``python3-pip``, ``ca-certificates``; no docs, no apt lists)
and committed into buildah's local storage as :data:`BASE_TAG`. That build takes a minute
or two and is skipped while the image exists. The Containerfile is then built on top of it
with ``--build-arg PYTHON_BASE=<that>`` (pip fetches the wheels from PyPI through
``--network host``) and pushed to the test cluster's registry.

Command line (root; needs ``buildah`` and ``mmdebstrap``)::

    python -m tests.e2e.images base                 # build the base (cached)
    python -m tests.e2e.images operator             # base + operator image
    python -m tests.e2e.images operator --push 127.0.0.1:5000/taskflow/operator:dev
    python -m tests.e2e.images agent                # base + the static agent image
    python -m tests.e2e.images static               # an image holding one static binary
    python -m tests.e2e.images all [--registry 127.0.0.1:5000] [--platforms amd64,arm64]

``all`` builds the operator and the agent for every platform (default linux/amd64 and
linux/arm64) and pushes each as one OCI image index, printing ``operator=REF`` and
``agent=REF``; without ``--registry`` (or ``$TASKFLOW_TEST_REGISTRY``) it pushes to the
running harness cluster's registry (the full tier's, 127.0.0.1:35000).

Other platforms than this machine's need no emulation: the Containerfile's build stages run
on this machine's base and write the target's files (wheels by ``pip --platform``, the
agent cross-compiled), and the target's base is built by ``mmdebstrap --variant=extract
--arch=ARCH`` (unpacked, no maintainer script run; the two things those scripts would make
that the operator uses, the CA certificates and the stdlib's bytecode, come from this
machine: the native base's ``/etc/ssl/certs`` and its same-version python3).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"

BASE_TAG = "localhost/taskflow/python-base:3.11"
OPERATOR_TAG = "localhost/taskflow/operator:dev"
AGENT_TAG = "localhost/taskflow/agent:dev"
STATIC_TAG = "localhost/taskflow/static-step:dev"
#: the one program of the static test image: prints its arguments, one per line, and
#: writes the last one to the file named by the one before it when there are 3 or more
STATIC_SOURCE = r"""
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        write(1, argv[i], strlen(argv[i]));
        write(1, "\n", 1);
    }
    if (argc >= 4) {
        int fd = open(argv[argc - 2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return 3;
        write(fd, argv[argc - 1], strlen(argv[argc - 1]));
        close(fd);
    }
    return 0;
}
"""
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")
BUILD_CA_PATH = "/run/taskflow-build-ca.crt"
MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")
#: the platforms `all` builds and pushes (README, the chart's values say the same)
PLATFORMS = ("amd64", "arm64")
_DPKG_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

# (context_dir, containerfile, target, tag, build_args) -> None; the harness's
# ``build_containerfile`` has this shape.
Builder = Callable[[Path, Path, str, str, Mapping[str, str]], object]


class ImageError(RuntimeError):
    """A build step failed; the message says which and why."""


def _log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def _run(args: Sequence[str], *, capture: bool = False) -> str:
    _log("$ " + " ".join(args))
    proc = subprocess.run(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip()[-4000:] if capture else "see output above"
        raise ImageError(f"{args[0]} exited {proc.returncode}: {detail}")
    return proc.stdout or ""


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ImageError(
            f"missing tool(s): {', '.join(missing)}; on Debian: apt-get install -y "
            + " ".join(missing)
        )


def image_exists(tag: str) -> bool:
    proc = subprocess.run(
        ["buildah", "inspect", "--type", "image", tag],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def image_id(tag: str) -> str:
    """The local image's ID (hex)."""
    out = _run(
        ["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", tag], capture=True
    )
    return out.strip()


def version() -> str:
    from taskflow import __version__

    return __version__


def image_size(tag: str) -> int:
    """Uncompressed size in bytes of a local image, as buildah reports it (e.g. "232 MB")."""
    out = _run(["buildah", "images", "--json", tag], capture=True)
    rows = json.loads(out)
    if not rows:
        raise ImageError(f"no image {tag}")
    number, _, unit = str(rows[0].get("size", "0 B")).partition(" ")
    return int(float(number) * _UNITS.get(unit.upper() or "B", 1))


def registry_image_size(registry: str, repository: str, reference: str) -> int:
    """Compressed size in bytes (config + layers) of an image in a plain-HTTP registry."""
    import urllib.request

    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{reference}",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        manifest = json.load(response)
    blobs = [manifest.get("config", {}), *manifest.get("layers", [])]
    return sum(int(b.get("size", 0)) for b in blobs)


def native_arch() -> str:
    """This machine's architecture, as OCI and Debian name it."""
    machine = os.uname().machine
    return _DPKG_ARCH.get(machine, machine)


def base_tag(arch: str) -> str:
    """The local Python base for ``arch`` (:data:`BASE_TAG` is this machine's)."""
    return BASE_TAG if arch == native_arch() else f"{BASE_TAG}-{arch}"


def operator_tag(arch: str) -> str:
    return OPERATOR_TAG if arch == native_arch() else f"{OPERATOR_TAG}-{arch}"


def agent_tag(arch: str) -> str:
    return AGENT_TAG if arch == native_arch() else f"{AGENT_TAG}-{arch}"


def _foreign_hooks(native_root: str) -> list[str]:
    """mmdebstrap hooks for an unpacked foreign root: what its maintainer scripts would
    have made and the operator uses (the native base's CA store, same Debian package;
    the stdlib's bytecode, compiled by this machine's python3 of the same version)."""
    return [
        f'--customize-hook=cp -a {native_root}/etc/ssl/certs/. "$1"/etc/ssl/certs/',
        '--customize-hook=/usr/bin/python3 -m compileall -q -j0 "$1"/usr/lib/python3.11',
    ]


def build_python_base(tag: str = BASE_TAG, *, force: bool = False, arch: str | None = None) -> str:
    """Build the Debian Python base image for ``arch`` (default this machine's) into buildah
    storage; skipped when present. Another architecture's is unpacked, not installed (no
    emulation): see the module docstring."""
    require_tools("buildah", "mmdebstrap")
    arch = arch or native_arch()
    if not force and image_exists(tag):
        _log(f"{tag}: present, not rebuilt")
        return tag
    foreign = arch != native_arch()
    if foreign:
        require_tools("/usr/bin/python3")
        build_python_base(BASE_TAG)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="taskflow-base-") as tmp,
        _mounted(BASE_TAG if foreign else None) as native_root,
    ):
        tarball = Path(tmp) / "rootfs.tar"
        args = [
            "mmdebstrap",
            "--variant=extract" if foreign else "--variant=minbase",
            f"--arch={arch}",
            "--include=" + ",".join(BASE_PACKAGES),
            "--aptopt=APT::Install-Recommends false",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/lintian/*",
            "--customize-hook=rm -rf "
            '"$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old '
            '"$1"/var/log/* "$1"/tmp/*',
        ]
        if native_root is not None:
            args += _foreign_hooks(native_root)
        if MERGED_USR_HOOK.is_dir():
            # usr-is-merged instead of usrmerge (which drags perl into the image).
            args.append(f"--hook-dir={MERGED_USR_HOOK}")
        args += [DEBIAN_SUITE, str(tarball), *DEBIAN_MIRRORS]
        _run(args)
        ctr = _run(["buildah", "from", "scratch"], capture=True).strip()
        try:
            _run(["buildah", "add", ctr, str(tarball), "/"])
            _run(
                [
                    "buildah",
                    "config",
                    "--os",
                    "linux",
                    "--arch",
                    arch,
                    "--env",
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env",
                    "LANG=C.UTF-8",
                    "--cmd",
                    '["python3"]',
                    "--label",
                    "org.opencontainers.image.description="
                    "taskflow test base: Debian bookworm minbase + python3, built locally",
                    ctr,
                ]
            )
            _run(["buildah", "commit", "--rm", ctr, tag])
        except BaseException:
            subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
            raise
    _log(f"{tag}: built in {time.monotonic() - started:.0f}s")
    return tag


@contextlib.contextmanager
def _mounted(image: str | None) -> Iterator[str | None]:
    """A local image's root, mounted read-only for the block (None: nothing)."""
    if image is None:
        yield None
        return
    ctr = _run(["buildah", "from", "--pull-never", image], capture=True).strip()
    try:
        yield _run(["buildah", "mount", ctr], capture=True).strip()
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts, if configured (e.g. a TLS-inspecting proxy)."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value).resolve()
    return None


def buildah_build(
    context_dir: Path,
    containerfile: Path,
    target: str,
    tag: str,
    build_args: Mapping[str, str],
    *,
    arch: str | None = None,
) -> None:
    """Build one target of a Containerfile with buildah (layers cached, host network), for
    ``arch`` (default this machine's).

    Not with ``--platform``: buildah 1.28 then looks every local image up for that
    platform, ``FROM --platform=...`` included, and finds no base for the build stages. So
    TARGETARCH is passed as the builders that honour ``--platform`` set it (and not
    BUILDPLATFORM, which buildah 1.28 would take as the platform of every lookup), BUILD_BASE is
    this machine's base and PYTHON_BASE the target's (whose architecture the operator image
    inherits); a ``FROM scratch`` result (the agent) gets its architecture set after."""
    arch = arch or native_arch()
    build_args = {
        "TARGETARCH": arch,
        "BUILD_BASE": BASE_TAG,
        "PYTHON_BASE": base_tag(arch),
        **build_args,
    }
    args = [
        "buildah",
        "build",
        "--layers",
        "--force-rm",
        "--network",
        "host",
        "--pull-never",
        "-f",
        str(containerfile),
        "--target",
        target,
        "-t",
        tag,
    ]
    ca_bundle = host_ca_bundle()
    if ca_bundle is not None and "PIP_CERT" not in build_args:
        args += ["--volume", f"{ca_bundle}:{BUILD_CA_PATH}:ro"]
        build_args["PIP_CERT"] = BUILD_CA_PATH
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    args.append(str(context_dir))
    _run(args)
    _set_arch(tag, arch)


def _set_arch(tag: str, arch: str) -> None:
    """Re-commit ``tag`` with ``arch`` in its config when it says another one."""
    fmt = "{{.OCIv1.Architecture}}"
    if (
        _run(["buildah", "inspect", "--type", "image", "--format", fmt, tag], capture=True).strip()
        == arch
    ):
        return
    ctr = _run(["buildah", "from", "--pull-never", tag], capture=True).strip()
    try:
        _run(["buildah", "config", "--os", "linux", "--arch", arch, ctr])
        _run(["buildah", "commit", "--rm", ctr, tag], capture=True)
    except BaseException:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
        raise


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    size_bytes: int
    seconds: float


def _bases(base: str, arch: str) -> dict[str, str]:
    """Build args for the bases (built first when they are the local ones and absent)."""
    if base != BASE_TAG:
        return {"PYTHON_BASE": base, "BUILD_BASE": base}
    build_python_base(BASE_TAG)
    return {"PYTHON_BASE": build_python_base(base_tag(arch), arch=arch)}


def build_operator(
    *,
    base: str = BASE_TAG,
    tag: str | None = None,
    builder: Builder | None = None,
    context_dir: Path = ROOT,
    arch: str | None = None,
) -> BuiltImage:
    """Build the Containerfile's ``operator`` target for ``arch`` (default this machine's)
    on ``base`` (the local bases are built first if absent)."""
    arch = arch or native_arch()
    tag = tag or operator_tag(arch)
    build_args = {**_bases(base, arch), "VERSION": version()}
    started = time.monotonic()
    if builder is None:
        buildah_build(
            context_dir, context_dir / "Containerfile", "operator", tag, build_args, arch=arch
        )
    else:
        builder(context_dir, context_dir / "Containerfile", "operator", tag, build_args)
    seconds = time.monotonic() - started
    size = image_size(tag)
    _log(f"{tag}: built in {seconds:.0f}s, {size / 1e6:.1f} MB")
    return BuiltImage(tag=tag, size_bytes=size, seconds=seconds)


def build_agent(
    *,
    base: str = BASE_TAG,
    tag: str | None = None,
    builder: Builder | None = None,
    context_dir: Path = ROOT,
    arch: str | None = None,
) -> BuiltImage:
    """Build the Containerfile's ``agent`` target for ``arch`` (its build stage apt-installs
    gcc and libpython3-dev, or the cross gcc and the arch's libpython3.11-dev, into this
    machine's base: needs the Debian mirrors the first time; cached after)."""
    arch = arch or native_arch()
    tag = tag or agent_tag(arch)
    build_args = {"BUILD_BASE": base, "VERSION": version()}
    if base == BASE_TAG:
        build_python_base(base)
        build_args.pop("BUILD_BASE")
    started = time.monotonic()
    if builder is None:
        buildah_build(
            context_dir, context_dir / "Containerfile", "agent", tag, build_args, arch=arch
        )
    else:
        builder(context_dir, context_dir / "Containerfile", "agent", tag, build_args)
    seconds = time.monotonic() - started
    size = image_size(tag)
    _log(f"{tag}: built in {seconds:.0f}s, {size / 1e6:.1f} MB")
    return BuiltImage(tag=tag, size_bytes=size, seconds=seconds)


def build_static_image(tag: str = STATIC_TAG) -> BuiltImage:
    """An image with nothing but ``/step`` (a static C program, :data:`STATIC_SOURCE`): no
    shell, no libc. Needs ``gcc`` and ``libc6-dev`` (static libc) on this machine."""
    require_tools("buildah", "gcc")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="taskflow-static-") as tmp:
        source, binary = Path(tmp) / "step.c", Path(tmp) / "step"
        source.write_text(STATIC_SOURCE)
        _run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(source)])
        ctr = _run(["buildah", "from", "scratch"], capture=True).strip()
        try:
            _run(["buildah", "add", "--chmod", "0555", ctr, str(binary), "/step"])
            _run(["buildah", "config", "--entrypoint", '["/step"]', "--user", "65532", ctr])
            _run(["buildah", "commit", "--rm", ctr, tag])
        except BaseException:
            subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
            raise
    return BuiltImage(tag=tag, size_bytes=image_size(tag), seconds=time.monotonic() - started)


def push_versioned(tag: str, registry: str, repository: str) -> str:
    """Push a local image as ``registry/repository:<version>-<id12>``; returns that ref."""
    ident = image_id(tag)  # pushed by ID: the tag may be rebuilt meanwhile by someone else
    ref = f"{registry}/{repository}:{version()}-{ident[:12]}"
    push(ident, ref)
    return ref


def push_index(tags: Mapping[str, str], registry: str, repository: str) -> str:
    """Push local images (architecture -> tag) as one OCI image index
    ``registry/repository:<version>-<id12>`` (the id a hash of the images' IDs); returns
    that ref."""
    ids = {arch: image_id(tag) for arch, tag in sorted(tags.items())}
    digest = hashlib.sha256(" ".join(f"{a}={i}" for a, i in ids.items()).encode()).hexdigest()
    ref = f"{registry}/{repository}:{version()}-{digest[:12]}"
    name = f"localhost/taskflow/index-{repository.replace('/', '-')}:{digest[:12]}"
    subprocess.run(["buildah", "manifest", "rm", name], capture_output=True, check=False)
    _run(["buildah", "manifest", "create", name], capture=True)
    try:
        for arch, ident in ids.items():
            _run(
                ["buildah", "manifest", "add", "--os", "linux", "--arch", arch, name, ident],
                capture=True,
            )
        _run(
            [
                "buildah", "manifest", "push", "--all", "--format", "oci",
                "--tls-verify=false", name, f"docker://{ref}",
            ]
        )  # fmt: skip
    finally:
        subprocess.run(["buildah", "manifest", "rm", name], capture_output=True, check=False)
    return ref


def harness_registry() -> str | None:
    """The running harness cluster's registry (its full tier), if one runs."""
    from tests.cluster import harness

    info = harness.running()
    return info.registry if info is not None else None


def build_all(registry: str, platforms: Sequence[str]) -> dict[str, str]:
    """Operator and agent for every platform, pushed as indexes: name -> ref."""
    operators = {a: build_operator(arch=a).tag for a in platforms}
    agents = {a: build_agent(arch=a).tag for a in platforms}
    for arch in platforms:
        for tag in (operators[arch], agents[arch]):
            _log(f"{tag}: {image_size(tag) / 1e6:.1f} MB uncompressed")
    return {
        "operator": push_index(operators, registry, "taskflow/operator"),
        "agent": push_index(agents, registry, "taskflow/agent"),
    }


def push(tag: str, destination: str) -> None:
    """Push a local image to ``host:port/repo:tag`` over plain HTTP (the test registry)."""
    _run(["buildah", "push", "--tls-verify=false", tag, f"docker://{destination}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.images", description=__doc__)
    parser.add_argument("what", choices=["base", "operator", "agent", "static", "all"])
    parser.add_argument(
        "--registry",
        default=os.environ.get("TASKFLOW_TEST_REGISTRY"),
        metavar="HOST:PORT",
        help="with 'all': push there (default: $TASKFLOW_TEST_REGISTRY, else the running "
        "harness cluster's registry)",
    )
    parser.add_argument(
        "--platforms",
        default=",".join(PLATFORMS),
        metavar="ARCH,...",
        help=f"with 'all': the index's platforms (default {','.join(PLATFORMS)})",
    )
    parser.add_argument("--arch", help="with operator/agent/base: build for this platform")
    parser.add_argument("--force", action="store_true", help="rebuild the base image")
    parser.add_argument("--base", default=BASE_TAG, help="PYTHON_BASE for the Containerfile")
    parser.add_argument("--tag", help="operator: the local tag")
    parser.add_argument("--push", metavar="HOST:PORT/REPO:TAG", help="push the result there")
    opts = parser.parse_args(argv)
    os.environ.setdefault("BUILDAH_ISOLATION", "chroot")
    try:
        if opts.what == "all":
            registry = opts.registry or harness_registry()
            if not registry:
                raise ImageError(
                    "no registry to push to: no harness cluster with a registry runs "
                    "(`nox -s cluster -- up --tier full` starts one) and neither --registry "
                    "nor TASKFLOW_TEST_REGISTRY is set"
                )
            refs = build_all(registry, [a for a in opts.platforms.split(",") if a])
            for name, ref in refs.items():
                print(f"{name}={ref}")
            return 0
        if opts.what == "base":
            arch = opts.arch or native_arch()
            tag = opts.base if opts.base != BASE_TAG else base_tag(arch)
            result = build_python_base(tag, force=opts.force, arch=arch)
        elif opts.what == "agent":
            result = build_agent(base=opts.base, arch=opts.arch).tag
        elif opts.what == "static":
            result = build_static_image().tag
        else:
            if opts.force and opts.base == BASE_TAG:
                build_python_base(opts.base, force=True)
            result = build_operator(base=opts.base, tag=opts.tag, arch=opts.arch).tag
        if opts.push:
            push(result, opts.push)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
