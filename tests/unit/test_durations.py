"""One duration grammar, two parsers: the operator's (``taskflow.api.duration``, also the
CRD's pattern) and the agent's (``taskflow_agent._duration``, stdlib only, so it shares the
table, not the code). The table is tests/data/durations.json: Go's ``time.ParseDuration``
without a sign."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from taskflow.api import duration as api
from taskflow_agent import _duration as agent

TABLE = Path(__file__).resolve().parents[1] / "data" / "durations.json"
CASES: list[dict[str, Any]] = json.loads(TABLE.read_text(encoding="utf-8"))["cases"]


def _ids(case: dict[str, Any]) -> str:
    return ascii(case["text"])


def _check(parse: Any, case: dict[str, Any]) -> None:
    if case["seconds"] is None:
        with pytest.raises(ValueError, match=re.escape(repr(case["text"]))):
            parse(case["text"])
    else:
        assert parse(case["text"]) == pytest.approx(case["seconds"], rel=1e-12, abs=0)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_api_parser(case: dict[str, Any]) -> None:
    _check(api.parse_duration, case)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_crd_pattern(case: dict[str, Any]) -> None:
    """The CRD's CEL rule is the same grammar (RE2 reads the pattern as re does)."""
    assert bool(re.fullmatch(api.DURATION_PATTERN, case["text"])) == (case["seconds"] is not None)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_agent_parser(case: dict[str, Any]) -> None:
    _check(agent.parse_duration, case)


def test_the_table_covers_both_verdicts_and_every_unit() -> None:
    good = [c["text"] for c in CASES if c["seconds"] is not None]
    assert len(good) >= 10
    assert len(CASES) - len(good) >= 10
    for unit in ("ns", "us", "\u00b5s", "\u03bcs", "ms", "s", "m", "h"):
        assert any(t.endswith(unit) for t in good), unit
