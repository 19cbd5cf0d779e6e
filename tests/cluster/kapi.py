"""A minimal admin client for the harness's own readiness checks (no kubectl fork)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from . import config
from .layout import Layout


class Api:
    def __init__(self, layout: Layout) -> None:
        self.base = config.APISERVER_URL
        ctx = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
        ctx.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
        self.ctx = ctx

    def get(self, path: str) -> Any:
        """GET `path`; None on 404."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=3, context=self.ctx) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def healthy(self, path: str = "/readyz") -> bool:
        with urllib.request.urlopen(self.base + path, timeout=3, context=self.ctx) as r:
            return int(r.status) == 200

    def node_ready(self, name: str) -> bool:
        node = self.get(f"/api/v1/nodes/{name}")
        if not node:
            return False
        conds = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
