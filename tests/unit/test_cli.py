"""CLI parsing and the cluster-free commands (crd, render)."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import pytest
import yaml

from taskflow import __version__, cli
from taskflow.api.crd import crd_yaml
from taskflow.engine.leader import LeaseConfig
from taskflow.settings import Settings

# The seed project's four examples, copied unchanged into the repo.
SEED_EXAMPLES = pathlib.Path(__file__).parents[1] / "data" / "seed"

TASK = """\
apiVersion: api.practice.com/v1alpha1
kind: Task
metadata:
  name: demo
  namespace: ns1
  uid: 0d7a3a52-1111-2222-3333-444455556666
spec:
  steps:
    - name: build
      image: busybox
      script: |
        echo hi
    - name: test
      image: busybox
      command: ["true"]
"""


def test_run_defaults() -> None:
    args = cli.build_parser().parse_args(["run"])
    cfg = cli.run_config(args)
    assert cfg.namespaces == ()
    assert cfg.workers == 64
    assert cfg.qps is None  # chosen at start: unlimited under APF, else 50/100
    assert cfg.burst is None
    assert cfg.lease is None
    assert cfg.bind_address == ":8080"
    assert cfg.settings == Settings()
    assert args.log_format == "text"
    assert args.log_level == "info"
    assert args.kubeconfig is None
    assert args.context is None


def test_run_all_flags() -> None:
    args = cli.build_parser().parse_args(
        [
            "run",
            "--kubeconfig",
            "/tmp/kc",
            "--context",
            "kind",
            "-n",
            "a",
            "--namespace",
            "b",
            "-n",
            "a",
            "--workers",
            "8",
            "--qps",
            "0",
            "--burst",
            "5",
            "--leader-elect",
            "--lease-namespace",
            "sys",
            "--lease-name",
            "lock",
            "--lease-duration",
            "15",
            "--renew-deadline",
            "10",
            "--retry-period",
            "2",
            "--bind-address",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--image-pull-timeout",
            "60",
            "--config-error-timeout",
            "30",
            "--stream-failure-threshold",
            "10",
            "--resync-period",
            "0",
            "--default-executor",
            "agent",
            "--agent-image",
            "registry.example/taskflow/agent@sha256:" + "0" * 64,
            "--registry-mirror",
            "docker.io=https://mirror.example",
            "--registry-mirror=127.0.0.1:5000=http://10.0.0.1:5000",
        ]
    )
    cfg = cli.run_config(args)
    assert cfg.registry.mirrors == {
        "docker.io": "https://mirror.example",
        "127.0.0.1:5000": "http://10.0.0.1:5000",
    }
    assert args.kubeconfig == "/tmp/kc"
    assert args.context == "kind"
    assert cfg.namespaces == ("a", "b")  # de-duplicated, order kept
    assert cfg.workers == 8
    assert cfg.qps == 0
    assert cfg.burst == 5
    assert cfg.lease == LeaseConfig(namespace="sys", name="lock")
    assert cfg.bind_address == "127.0.0.1:0"
    assert cfg.stream_failure_threshold == 10
    assert cfg.resync_period == 0
    assert cfg.settings == Settings(
        image_pull_timeout=60,
        config_error_timeout=30,
        default_executor="agent",
        agent_image="registry.example/taskflow/agent@sha256:" + "0" * 64,
    )
    assert args.log_format == "json"
    assert args.log_level == "debug"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--workers", "0"],
        ["run", "--bind-address", "8080"],
        ["run", "--bind-address", ":http"],
        ["run", "--log-format", "xml"],
        ["run", "--qps", "-1"],
        ["run", "--resync-period", "-5"],
        ["run", "--default-executor", "docker"],
        ["render"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_leader_election_flags_become_one_lease_config() -> None:
    timings = ["--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "0.5"]
    args = cli.build_parser().parse_args(["run", "--leader-elect", *timings])
    assert cli.run_config(args).lease == LeaseConfig(
        duration=4.0, renew_deadline=3.0, retry_period=0.5
    )


def test_lease_timings_are_ignored_without_leader_election() -> None:
    args = cli.build_parser().parse_args(["run", "--renew-deadline", "20"])
    assert cli.run_config(args).lease is None


@pytest.mark.parametrize(
    "timings",
    [
        ["--lease-duration", "10"],  # == --renew-deadline
        ["--renew-deadline", "1"],  # < --retry-period
        ["--retry-period", "0"],
        ["--lease-duration", "5", "--renew-deadline", "8", "--retry-period", "9"],
    ],
)
def test_lease_timings_out_of_order_exit_2(
    timings: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--leader-elect", *timings])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert "need lease duration > renew deadline > retry period > 0" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"taskflow {__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "run" in capsys.readouterr().err


def test_help_mentions_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--kubeconfig",
        "--context",
        "--namespace",
        "--workers",
        "--leader-elect",
        "--lease-namespace",
        "--lease-name",
        "--bind-address",
        "--log-format",
        "--log-level",
        "--image-pull-timeout",
        "--default-executor",
        "--agent-image",
        "--registry-mirror",
    ):
        assert flag in text


def test_crd_prints_the_generated_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crd"]) == 0
    out = capsys.readouterr().out
    assert out == crd_yaml()
    assert yaml.safe_load(out)["kind"] == "CustomResourceDefinition"


def test_render_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "task.yaml"
    f.write_text(TASK)
    assert cli.main(["render", "-f", str(f), "--default-executor", "kubelet"]) == 0
    pod = yaml.safe_load(capsys.readouterr().out)
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "demo-pod"
    assert pod["metadata"]["namespace"] == "ns1"
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["build"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["test"]
    script = pod["metadata"]["annotations"]["script.api.practice.com/build"]
    assert script == "#!/bin/sh\necho hi\n"


def test_render_stdin_with_several_documents() -> None:
    two = TASK + "---\n" + TASK.replace("name: demo", "name: other")
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(two)
    try:
        assert cli.cmd_render("-", out, err) == 0
    finally:
        sys.stdin = old
    names = [p["metadata"]["name"] for p in yaml.safe_load_all(out.getvalue())]
    assert names == ["demo-pod", "other-pod"]


def test_render_errors(tmp_path: pathlib.Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.cmd_render(str(tmp_path / "missing.yaml"), out, err) == 1
    assert "No such file" in err.getvalue()
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: api.practice.com/v1alpha1\nkind: Task\nmetadata: {name: x}\n")
    err = io.StringIO()
    assert cli.cmd_render(str(bad), out, err) == 1
    assert "Task x" in err.getvalue()
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\n")
    err = io.StringIO()
    assert cli.cmd_render(str(cm), out, err) == 1
    assert "no Task" in err.getvalue()


@pytest.mark.parametrize("example", sorted(p.name for p in SEED_EXAMPLES.glob("*.yaml")))
def test_render_seed_examples(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    # under the agent, their steps without command need the registry (render reads none)
    argv = ["render", "-f", str(SEED_EXAMPLES / example), "--default-executor", "kubelet"]
    assert cli.main(argv) == 0
    pod = yaml.safe_load(capsys.readouterr().out)
    assert pod["spec"]["restartPolicy"] == "Never"


def test_all_four_seed_examples_are_rendered() -> None:
    assert len(list(SEED_EXAMPLES.glob("*.yaml"))) == 4


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "taskflow", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"taskflow {__version__}"


@pytest.mark.parametrize("value", ["docker.io", "docker.io=mirror.example", "=http://x"])
def test_registry_mirror_needs_host_and_url_with_scheme(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--registry-mirror", value])
    assert "want HOST=URL" in capsys.readouterr().err
