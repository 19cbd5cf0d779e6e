"""The CNCF distribution registry (Debian `docker-registry`), plain http; optionally behind
htpasswd auth."""

from __future__ import annotations

import socket
import time
import warnings
from pathlib import Path

import yaml

from .binaries import bin_path
from .errors import HarnessError
from .procs import Procs


def wait_for_free_port(port: int, timeout: float = 30.0) -> None:
    """Wait (bounded) until `port` can be bound on every address: a connection made before
    the port was reserved may still hold it as its local port."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listener
            try:
                probe.bind(("0.0.0.0", port))
                return
            except OSError as err:
                if time.monotonic() > deadline:
                    raise HarnessError(f"port {port} stayed in use for {timeout:.0f}s") from err
        time.sleep(0.2)


def bcrypt_hash(password: str) -> str:
    """An htpasswd bcrypt hash (the registry accepts nothing else), from libc's crypt(3)
    (libxcrypt on Debian): no new dependency, no apache2-utils."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))


def registry_config(
    storage: Path,
    addr: str,
    conf_dir: Path,
    auth: tuple[str, str] | None = None,
    token: dict[str, str] | None = None,
) -> Path:
    """Write the registry's config (and htpasswd file with ``auth``; ``token``: the
    distribution's token auth: realm, service, issuer, rootcertbundle); returns its path."""
    storage.mkdir(parents=True, exist_ok=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": addr},
    }
    if auth is not None:
        htpasswd = conf_dir / "htpasswd"
        htpasswd.write_text(f"{auth[0]}:{bcrypt_hash(auth[1])}\n")
        conf["auth"] = {"htpasswd": {"realm": "taskflow-test", "path": str(htpasswd)}}
    elif token is not None:
        conf["auth"] = {"token": token}
    path = conf_dir / "registry.yml"
    path.write_text(yaml.safe_dump(conf))
    return path


def start_registry(
    procs: Procs,
    storage: Path,
    addr: str,
    conf_dir: Path,
    *,
    name: str = "registry",
    auth: tuple[str, str] | None = None,
) -> None:
    path = registry_config(storage, addr, conf_dir, auth)
    wait_for_free_port(int(addr.rsplit(":", 1)[1]))
    procs.start(name, [bin_path("docker-registry"), "serve", str(path)])
