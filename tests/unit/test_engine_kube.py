"""Client-side pieces without I/O: Retry-After, which answers are retried and how long
to wait, and the leader's clock-based view of its own leadership."""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime
from typing import cast

import anyio
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from taskflow.engine.kube import (
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    Kube,
    _env_proxy,
    parse_retry_after,
    retry_delay,
)
from taskflow.engine.leader import LeaderElector, LeaseConfig
from taskflow.engine.operator import Operator, OperatorConfig
from taskflow.engine.ratelimit import ExponentialBackoff

NOW = datetime(2026, 1, 6, 22, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 12 ", 12.0),
        ("-4", 0.0),
        ("soon", None),
        ("Tue, 06 Jan 2026 22:00:07 GMT", 7.0),  # an HTTP date
        ("Tue, 06 Jan 2026 21:59:00 GMT", 0.0),  # in the past: at once
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


NO_BACKOFF = ExponentialBackoff(0.001, 0.001, jitter=0.0)


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "delay"),
    [
        (429, 2.0, 1, 2.0),  # the server's word
        (429, None, 1, DEFAULT_RETRY_AFTER),  # 429 is always retried
        (429, 600.0, 1, MAX_RETRY_AFTER),  # capped
        (503, 4.0, 1, 4.0),  # 503 only with Retry-After (the server did not act on it)
        (503, None, 1, None),
        (500, 1.0, 1, None),  # may have been acted on: not ours to repeat
        (409, None, 1, None),
        (429, 1.0, 3, 1.0),
        (429, 1.0, 4, None),  # out of retries (max 3 here)
    ],
)
def test_retry_delay(status: int, retry_after: float | None, attempt: int, delay: float) -> None:
    assert retry_delay(status, retry_after, attempt, NO_BACKOFF, max_retries=3) == delay


def test_retry_delay_backs_off_beyond_a_short_retry_after() -> None:
    backoff = ExponentialBackoff(0.5, 30.0, jitter=0.0)
    delays = [retry_delay(429, 0.0, n, backoff, max_retries=10) for n in range(1, 9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lease_config_defaults_are_client_go_s() -> None:
    assert LeaseConfig() == LeaseConfig(
        namespace=None,
        name="taskflow-leader",
        duration=15.0,
        renew_deadline=10.0,
        retry_period=2.0,
    )


@pytest.mark.parametrize(
    ("duration", "renew_deadline", "retry_period"),
    [
        (10.0, 10.0, 2.0),  # the lease could expire for a standby while we still lead
        (8.0, 10.0, 2.0),
        (15.0, 2.0, 2.0),  # no room for one renewal before the deadline
        (15.0, 2.0, 3.0),
        (15.0, 10.0, 0.0),
        (15.0, 10.0, -1.0),
        (2.0, 10.0, 15.0),
    ],
)
def test_lease_config_refuses_timings_out_of_order(
    duration: float, renew_deadline: float, retry_period: float
) -> None:
    with pytest.raises(ValueError, match="need lease duration > renew deadline > retry period"):
        LeaseConfig(duration=duration, renew_deadline=renew_deadline, retry_period=retry_period)


def test_lease_config_accepts_close_timings() -> None:
    assert LeaseConfig(duration=0.3, renew_deadline=0.2, retry_period=0.1).duration == 0.3


def test_the_elector_resolves_no_lease_namespace_to_our_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    kube = cast(Kube, None)
    assert LeaderElector(kube, LeaseConfig(namespace="ns"), identity="me").namespace == "ns"
    sa = tmp_path / "namespace"
    sa.write_text("taskflow-system\n")
    monkeypatch.setattr("taskflow.engine.kube.IN_CLUSTER_NAMESPACE_FILE", str(sa))
    assert LeaderElector(kube, LeaseConfig(), identity="me").namespace == "taskflow-system"
    monkeypatch.setattr("taskflow.engine.kube.IN_CLUSTER_NAMESPACE_FILE", str(tmp_path / "no"))
    assert LeaderElector(kube, LeaseConfig(), identity="me").namespace == "default"


def test_a_leader_stops_leading_by_the_clock_at_its_renew_deadline() -> None:
    clock = Clock()
    elector = LeaderElector(
        cast(Kube, None),
        LeaseConfig(namespace="ns", name="lease", duration=15.0, renew_deadline=10.0),
        identity="me",
        clock=clock,
    )
    assert not elector.is_leader
    elector._took({"spec": {"holderIdentity": "me", "renewTime": "t"}}, sent=clock.now)
    elector.leading.set()
    assert elector.is_leader
    clock.now += 9.9
    assert elector.is_leader
    # no successful renewal for renew_deadline: stop acting before the lease (15 s) expires
    clock.now += 0.1
    assert not elector.is_leader
    elector._took({"spec": {"holderIdentity": "me", "renewTime": "t2"}}, sent=clock.now)
    assert elector.is_leader


async def test_the_operator_paces_api_requests_not_reconciles() -> None:
    kube = Kube(ApiClient(configuration=Configuration(host="http://127.0.0.1:9")))
    try:
        op = Operator(kube, OperatorConfig(qps=5.0, burst=2, bind_address="127.0.0.1:0"))
        assert (kube.limiter.rate, kube.limiter.burst) == (5.0, 2)
        assert kube.metrics is op.metrics
        # 300 reconciles (of finished Tasks, say) need no API call: no token is waited for
        for n in range(300):
            op.queue.add(f"uid-{n}")
        with anyio.fail_after(1):
            for _ in range(300):
                op.queue.done(await op.queue.get())
    finally:
        await kube.close()


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://10.0.0.1:6443", None),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https://10.0.0.1:6443", "http://proxy:3128"),
        ({"https_proxy": "http://p:1"}, "https://api.example.com", "http://p:1"),
        ({"HTTP_PROXY": "http://proxy:3128"}, "https://10.0.0.1:6443", None),
        (
            {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "api.example.com"},
            "https://api.example.com:6443",
            None,
        ),
    ],
)
def test_the_environments_proxy_is_read_once_as_a_trusting_session_would(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _env_proxy(url) == expected
