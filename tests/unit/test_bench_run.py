"""benchmarks/run.py: the parts table and its dispatch (no cluster), and the tools' entry."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import benchmarks.tools
import pytest
from benchmarks import run
from benchmarks.report import Metric


def test_every_sized_part_can_be_resized_and_only_those() -> None:
    assert set(run.SIZES) == {name for name, part in run.PARTS.items() if part.sizes}
    assert "handoff" not in run.SIZES


def test_a_part_without_a_cluster_runs_from_the_table_at_its_size(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[run.Context] = []

    async def fake(context: run.Context) -> list[Metric]:
        seen.append(context)
        return [Metric("agent.start_ms", "start", 1.5, "ms")]

    monkeypatch.setitem(run.PARTS, "agent", run.Part("none", (5, 20), fake))
    docs = tmp_path / "page.md"
    argv = ["--quick", "--only", "agent", "--size", "agent=7", "--docs", str(docs)]
    assert run.main(argv) == 0
    (context,) = seen
    assert (context.kube, context.n, context.quick) == (None, 7, True)
    assert "BENCH agent.start_ms=1.5" in capsys.readouterr().out
    assert "agent.start_ms" in docs.read_text()


def test_a_size_for_an_unsized_part_is_refused() -> None:
    with pytest.raises(SystemExit):
        run.main(["--quick", "--only", "agent", "--size", "handoff=3"])


@pytest.mark.parametrize("name", [m.name for m in pkgutil.iter_modules(benchmarks.tools.__path__)])
def test_each_tool_runs_as_a_module_with_a_main(name: str) -> None:
    module = importlib.import_module(f"benchmarks.tools.{name}")
    assert callable(module.main)
    assert name in (benchmarks.tools.__doc__ or "")
