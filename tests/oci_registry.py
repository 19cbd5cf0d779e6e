"""Real registries for tests: Debian's ``docker-registry`` (CNCF distribution) on loopback,
optionally behind htpasswd auth, and pushing hand-made images into any registry through the
distribution API (blobs, OCI/Docker manifests, OCI indexes and Docker manifest lists).

Used by the integration tests of the registry client and by the e2e's lookup tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from tests.cluster.registry import registry_config

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
START_DEADLINE: Final = 20.0  # seconds


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Pusher:
    """Pushes to ``base`` (``http://host:port``) with optional Basic credentials."""

    def __init__(self, base: str, auth: tuple[str, str] | None = None, timeout: float = 10.0):
        self.base = base.rstrip("/")
        self.auth = auth
        self.timeout = timeout

    def _send(
        self, method: str, url: str, body: bytes | None = None, ctype: str | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        req = urllib.request.Request(url, data=body, method=method)
        if ctype is not None:
            req.add_header("Content-Type", ctype)
        if self.auth is not None:
            raw = f"{self.auth[0]}:{self.auth[1]}".encode()
            req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, body = self._send("POST", f"{self.base}/v2/{repo}/blobs/uploads/")
        if status != 202:
            raise RuntimeError(f"blob upload start: {status} {body[:200]!r}")
        location = headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        status, _, body = self._send(
            "PUT", f"{location}{sep}digest={digest}", data, "application/octet-stream"
        )
        if status != 201:
            raise RuntimeError(f"blob upload: {status} {body[:200]!r}")
        return digest

    def manifest(self, repo: str, ref: str, doc: Mapping[str, object]) -> str:
        body = json.dumps(doc).encode()
        media = str(doc["mediaType"])
        status, _, answer = self._send("PUT", f"{self.base}/v2/{repo}/manifests/{ref}", body, media)
        if status != 201:
            raise RuntimeError(f"manifest {repo}:{ref}: {status} {answer[:300]!r}")
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def image(
        self,
        repo: str,
        tag: str | None,
        *,
        entrypoint: list[str] | None = None,
        cmd: list[str] | None = None,
        arch: str = "amd64",
        variant: str = "",
        docker: bool = False,
        layers: list[tuple[str, int]] | None = None,
    ) -> tuple[str, int]:
        """An image whose config says ``entrypoint``/``cmd`` (and nothing runnable unless
        ``layers`` names real ones); returns (manifest digest, manifest size). Without a
        tag it is pushed by digest only (an index's child)."""
        config: dict[str, object] = {
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        if variant:
            config["variant"] = variant
        raw = json.dumps(config).encode()
        cdigest = self.blob(repo, raw)
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": cdigest,
                "size": len(raw),
            },
            "layers": [
                {"mediaType": DOCKER_LAYER if docker else OCI_LAYER, "digest": d, "size": n}
                for d, n in layers or []
            ],
        }
        body = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.manifest(repo, tag or digest, doc)
        return digest, len(body)

    def _get(self, url: str, accept: str = "*/*") -> tuple[bytes, str]:
        req = urllib.request.Request(url, headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return resp.read(), str(resp.headers.get("Content-Type", ""))

    def derived(
        self,
        source: str,
        repo: str,
        *,
        entrypoint: list[str] | None,
        cmd: list[str] | None,
        arch: str = "amd64",
    ) -> tuple[str, int]:
        """A runnable image: ``source`` (``http://host:port/repo:tag``, no auth; its linux
        ``arch`` image when it is an index) with its layers copied here and its config's
        ENTRYPOINT/CMD replaced; pushed by digest. Returns (digest, size)."""
        base, _, rest = source.removeprefix("http://").partition("/")
        src_repo, _, ref = rest.rpartition(":")
        src = f"http://{base}/v2/{src_repo}"
        accept = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
        raw, _ = self._get(f"{src}/manifests/{ref}", accept)
        doc = json.loads(raw)
        if "manifests" in doc:
            child = next(
                m["digest"]
                for m in doc["manifests"]
                if m.get("platform", {}).get("architecture") == arch
            )
            doc = json.loads(self._get(f"{src}/manifests/{child}", accept)[0])
        for layer in doc["layers"]:
            self.blob(repo, self._get(f"{src}/blobs/{layer['digest']}")[0])
        config = json.loads(self._get(f"{src}/blobs/{doc['config']['digest']}")[0])
        config.setdefault("config", {})
        config["config"]["Entrypoint"], config["config"]["Cmd"] = entrypoint, cmd
        raw_config = json.dumps(config).encode()
        doc["config"] = {**doc["config"], "digest": self.blob(repo, raw_config)}
        doc["config"]["size"] = len(raw_config)
        doc.setdefault("mediaType", OCI_MANIFEST)
        body = json.dumps(doc).encode()
        return self.manifest(repo, "sha256:" + hashlib.sha256(body).hexdigest(), doc), len(body)

    def index(
        self, repo: str, tag: str, children: list[tuple[str, int, str]], *, docker: bool = False
    ) -> str:
        """An index (OCI) or manifest list (Docker) of ``(digest, size, "linux/arm64/v8")``."""

        def platform(text: str) -> dict[str, str]:
            parts = text.split("/")
            p = {"os": parts[0], "architecture": parts[1]}
            if len(parts) > 2:
                p["variant"] = parts[2]
            return p

        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST if docker else OCI_INDEX,
            "manifests": [
                {
                    "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                    "digest": d,
                    "size": n,
                    "platform": platform(p),
                }
                for d, n, p in children
            ],
        }
        return self.manifest(repo, tag, doc)


class LocalRegistry:
    def __init__(self, host: str, auth: tuple[str, str] | None, proc: subprocess.Popen[bytes]):
        self.host = host
        self.auth = auth
        self.proc = proc
        self.push = Pusher(f"http://{host}", auth)


def _ready(host: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry on {host} did not start") from None
        time.sleep(0.05)


@contextmanager
def local_registry(
    workdir: Path,
    *,
    auth: tuple[str, str] | None = None,
    token: dict[str, str] | None = None,
    storage: Path | None = None,
    addr: str = "127.0.0.1",
) -> Iterator[LocalRegistry]:
    """A ``docker-registry`` on ``addr`` and a free port (htpasswd auth with ``auth``, token
    auth with ``token``; ``storage`` shared with another registry if given), stopped at the
    end."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is missing (apt-get install docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    host = f"{addr}:{free_port(addr)}"
    config = registry_config(storage or workdir / "data", host, workdir, auth, token)
    log = (workdir / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _ready(host, time.monotonic() + START_DEADLINE)
        yield LocalRegistry(host, auth, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
