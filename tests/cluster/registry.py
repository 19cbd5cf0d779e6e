"""The CNCF distribution registry (Debian `docker-registry`) on loopback, plain http."""

from __future__ import annotations

from pathlib import Path

import yaml

from .binaries import bin_path
from .procs import Procs


def start_registry(procs: Procs, storage: Path, addr: str, conf_dir: Path) -> None:
    storage.mkdir(parents=True, exist_ok=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": addr},
    }
    path = conf_dir / "registry.yml"
    path.write_text(yaml.safe_dump(conf))
    procs.start("registry", [bin_path("docker-registry"), "serve", str(path)])
