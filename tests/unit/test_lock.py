"""requirements.lock: exact versions for CI, the image and the CRD generator (`nox -s lock`)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"

#: What api/schema.py reads to build the CRD: another version may give another CRD.
SCHEMA_INPUTS = ("kubernetes-asyncio", "msgspec")


def parse_lock(text: str) -> dict[str, Version]:
    """``name==version`` lines (markers and comments dropped) -> {canonical name: version}."""
    pins: dict[str, Version] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        [spec] = req.specifier
        assert spec.operator == "==", f"not an exact pin: {line}"
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(line) for line in lines]


def test_parse_lock_reads_pins_and_ignores_markers_and_comments() -> None:
    text = "# header\na-b==1.2\n    # via x\nc_d==3 ; sys_platform == 'win32'\n"
    assert parse_lock(text) == {"a-b": Version("1.2"), "c-d": Version("3")}


def test_parse_lock_refuses_a_range() -> None:
    with pytest.raises(AssertionError, match="not an exact pin"):
        parse_lock("a>=1\n")


def test_the_lock_pins_every_dependency_within_pyproject_ranges() -> None:
    pins = parse_lock(LOCK.read_text())
    for req in pyproject_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run `nox -s lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {req}: "
            "run `nox -s lock`"
        )


@pytest.mark.parametrize("name", SCHEMA_INPUTS)
def test_the_crd_generator_runs_on_the_locked_version(name: str) -> None:
    """The chart's CRD is compared with `taskflow crd` (tests/chart/test_chart.py); both
    must come from the locked version, or the comparison depends on what is installed."""
    pinned = parse_lock(LOCK.read_text())[name]
    installed = Version(metadata.version(name))
    assert installed == pinned, (
        f"{name} {installed} is installed, requirements.lock pins {pinned}: install with "
        "`pip install -c requirements.lock -e '.[dev]'` (every nox session does)"
    )


def test_pre_commit_runs_the_locked_ruff() -> None:
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert {h["id"] for h in hooks} == {"ruff-check", "ruff-format"}
    ruff = parse_lock(LOCK.read_text())["ruff"]
    for hook in hooks:
        assert hook["additional_dependencies"] == [f"ruff=={ruff}"], hook["id"]
