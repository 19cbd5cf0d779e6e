"""Helpers for the Helm chart: its generated CRD, a helm binary, rendering, the RBAC contract.

``python -m tests.e2e.chart write-crd`` regenerates ``charts/taskflow/crds/`` from
``taskflow crd`` (``nox -s crd`` runs it); ``tests/chart/test_chart.py`` fails when they differ.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "taskflow"
CRD_PATH = CHART_DIR / "crds" / "tasks.api.practice.com.yaml"
NAMESPACED_VALUES = CHART_DIR / "ci" / "namespaced-values.yaml"
DESIGN_DOC = ROOT / "docs" / "design.md"
KUBE_VERSION = "1.34.0"  # for `helm template` without a cluster (the chart wants >= 1.27)

Rule = tuple[str, str, frozenset[str]]  # (apiGroup, resource, verbs)


def taskflow_command() -> list[str]:
    """How to run the `taskflow` CLI of the current environment."""
    script = Path(sys.executable).with_name("taskflow")
    if script.is_file():
        return [str(script)]
    found = shutil.which("taskflow")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from taskflow.cli import main; sys.exit(main())"]


def taskflow_crd_output() -> bytes:
    """The exact bytes `taskflow crd` prints."""
    proc = subprocess.run(
        [*taskflow_command(), "crd"], capture_output=True, check=False, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`taskflow crd` exited {proc.returncode}: {proc.stderr.decode()}")
    return proc.stdout


def write_crd() -> Path:
    CRD_PATH.parent.mkdir(parents=True, exist_ok=True)
    CRD_PATH.write_bytes(taskflow_crd_output())
    return CRD_PATH


def helm_binary() -> str:
    """The harness's pinned helm (built alone, ~2 min, when absent), else one on PATH."""
    from tests.cluster import binaries, config

    if "helm" not in binaries.missing_builds():
        return binaries.bin_path("helm")
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    # Only helm, not the whole cluster: chart tests need no Kubernetes.
    binaries.bin_dir().mkdir(parents=True, exist_ok=True)
    binaries._run_build("helm", binaries.BUILDS["helm"], config.cache_dir() / "build.log")
    stamp = binaries._read_stamp()
    stamp["helm"] = binaries._stamp()["helm"]
    binaries._stamp_file().write_text(json.dumps(stamp, indent=1))
    return binaries.bin_path("helm")


def helm_template(
    *,
    helm: str,
    release: str = "taskflow",
    namespace: str = "taskflow-system",
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`helm template` the chart; returns the rendered objects (CRDs excluded)."""
    args = [
        helm,
        "template",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
    ]
    for f in values_files:
        args += ["-f", str(f)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    args += list(extra)
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"helm template failed: {proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def design_rbac() -> set[Rule]:
    """The RBAC table of docs/design.md as (apiGroup, resource, verbs) triples."""
    text = DESIGN_DOC.read_text()
    section = text.split("RBAC they need", 1)[1].split("\n## ", 1)[0]
    cell = re.compile(r"(?:`(?P<group>[\w.]+)`|core) `(?P<resource>[\w/]+)`: (?P<verbs>[\w, ]+)")
    rules: set[Rule] = set()
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 2:
            continue
        m = cell.fullmatch(cells[1])
        if m:
            verbs = frozenset(v.strip() for v in m["verbs"].split(","))
            rules.add((m["group"] or "", m["resource"], verbs))
    return rules


def granted_rules(roles: Iterable[Mapping[str, Any]]) -> set[Rule]:
    """Flatten (Cluster)Role rules into (apiGroup, resource, verbs) triples."""
    out: set[Rule] = set()
    for role in roles:
        for rule in role.get("rules") or []:
            assert not rule.get("resourceNames"), rule
            assert not rule.get("nonResourceURLs"), rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    out.add((group, resource, frozenset(rule["verbs"])))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["write-crd"]:
        print(write_crd().relative_to(ROOT))
        return 0
    if args == ["check-crd"]:
        same = CRD_PATH.is_file() and CRD_PATH.read_bytes() == taskflow_crd_output()
        print("up to date" if same else f"{CRD_PATH} differs from `taskflow crd`")
        return 0 if same else 1
    print("usage: python -m tests.e2e.chart write-crd|check-crd", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
