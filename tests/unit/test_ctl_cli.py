"""``kubectl taskflow``: parsing, help, and the one-line errors when there is no cluster."""

from __future__ import annotations

import ast
import json
import pathlib
import socket
import subprocess
import sys

import pytest

from taskflow import ctl
from taskflow.ctl._client import CtlError, context_namespace, explain, resolve
from taskflow.ctl._commands import load_tasks, namespace_of
from taskflow.ctl._logs import _names_pod
from taskflow.ctl._model import decode_task
from taskflow.engine.kube import ApiError
from tests.cluster.fixtures import tool

SRC = pathlib.Path(__file__).parents[2] / "src" / "taskflow"
COMMANDS = ("logs", "run", "get", "describe", "cancel", "wait")


def kubectl_taskflow(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys, taskflow.ctl as c; sys.exit(c.main())", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        ctl.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"kubectl taskflow {command}" in out
    assert "examples:" in out
    for flag in ("--namespace", "--context", "--kubeconfig"):
        assert flag in out


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ctl.main(["--help"])
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command} " in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["logs"],  # TASK missing
        ["run"],  # -f missing
        ["logs", "t", "--attempt", "0"],
        ["wait", "t", "--timeout", "soon"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert kubectl_taskflow(*argv, env={"HOME": "/nonexistent"}).returncode == 2


def test_cluster_flags_before_or_after_the_command() -> None:
    p = ctl.build_parser()
    a = p.parse_args(["-n", "a", "--context", "c", "logs", "t"])
    assert (a.namespace, a.context, a.kubeconfig) == ("a", "c", None)
    b = p.parse_args(["-n", "a", "logs", "t", "-n", "b", "--kubeconfig", "k"])
    assert (b.namespace, b.kubeconfig) == ("b", "k")
    c = p.parse_args(["wait", "t", "--timeout", "1m30s"])
    assert (c.timeout, c.namespace) == (90.0, None)


def test_no_cluster_is_one_line_without_traceback(tmp_path: pathlib.Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = kubectl_taskflow("get", env=env)
    assert r.returncode == 1
    assert (
        r.stderr
        == "error: no cluster: no kubeconfig ($KUBECONFIG, ~/.kube/config) and not in a pod\n"
    )
    r = kubectl_taskflow("logs", "-f", "t", env={**env, "KUBECONFIG": str(tmp_path / "nope")})
    assert r.returncode == 1
    assert r.stderr == f"error: no kubeconfig at {tmp_path / 'nope'}\n"


def kubeconfig(path: pathlib.Path, server: str, namespace: str | None = "team-a") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    path.write_text(
        f"""\
apiVersion: v1
kind: Config
current-context: one
contexts:
- name: one
  context: {{cluster: k, user: u{ns}}}
- name: two
  context: {{cluster: k, user: u, namespace: team-b}}
clusters:
- name: k
  cluster: {{server: "{server}"}}
users:
- name: u
  user: {{token: t}}
"""
    )
    return str(path)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connections are refused


@pytest.mark.parametrize(
    "command", [["get"], ["describe", "t"], ["logs", "-f", "t"], ["wait", "t"]]
)
def test_unreachable_cluster_is_one_line(tmp_path: pathlib.Path, command: list[str]) -> None:
    port = closed_port()
    cfg = kubeconfig(tmp_path / "config", f"http://127.0.0.1:{port}")
    r = kubectl_taskflow("--kubeconfig", cfg, *command, env={"HOME": str(tmp_path)})
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"error: cannot reach the cluster at http://127.0.0.1:{port}: ")
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_namespace_like_kubectl(tmp_path: pathlib.Path) -> None:
    cfg = kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    assert context_namespace(cfg, None) == "team-a"
    assert context_namespace(cfg, "two") == "team-b"
    assert context_namespace(cfg, "missing") is None
    assert resolve(cfg, None, None).namespace == "team-a"
    assert resolve(cfg, "two", None).namespace == "team-b"
    assert resolve(cfg, None, "mine").namespace == "mine"
    bare = kubeconfig(tmp_path / "bare", "https://127.0.0.1:6443", namespace=None)
    assert resolve(bare, None, None).namespace == "default"


TASK = """\
apiVersion: api.practice.com/v1alpha1
kind: Task
metadata:
  generateName: build-
spec:
  steps: [{name: a, image: busybox}]
"""


def test_load_tasks(tmp_path: pathlib.Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(TASK)
    (task,) = load_tasks(str(one))
    assert task["metadata"] == {"generateName": "build-"}
    two = tmp_path / "two.yaml"
    two.write_text(TASK + "---\n" + TASK.replace("generateName: build-", "name: x"))
    assert [t["metadata"] for t in load_tasks(str(two))] == [
        {"generateName": "build-"},
        {"name": "x"},
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no Task in"),
        ("kind: Pod\n", "is not a Task"),
        ("apiVersion: v1\nkind: Task\nmetadata: {name: x}\n", "is not api.practice.com/v1alpha1"),
        ("kind: Task\nspec: {}\n", "metadata.name or metadata.generateName"),
        ("[1, 2]\n", "not an object"),
        ("a: [\n", "cannot read"),
    ],
)
def test_load_tasks_rejects(tmp_path: pathlib.Path, text: str, match: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(CtlError, match=match):
        load_tasks(str(path))


def test_load_tasks_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CtlError, match="cannot read"):
        load_tasks(str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize(
    ("manifest_ns", "default", "explicit", "want"),
    [
        (None, "a", False, "a"),
        (None, "a", True, "a"),
        ("b", "a", False, "b"),  # the file wins over the context's namespace
        ("a", "a", True, "a"),
        ("b", "a", True, None),  # -n a, file says b: kubectl's error
    ],
)
def test_namespace_of(
    manifest_ns: str | None, default: str, explicit: bool, want: str | None
) -> None:
    manifest = {"metadata": {"name": "x", **({"namespace": manifest_ns} if manifest_ns else {})}}
    if want is None:
        with pytest.raises(CtlError, match="does not match"):
            namespace_of(manifest, default, explicit)
    else:
        assert namespace_of(manifest, default, explicit) == want


def test_nothing_imports_ctl_and_ctl_imports_only_what_it_may() -> None:
    allowed = (
        "taskflow.ctl",
        "taskflow.api",
        "taskflow.status",
        "taskflow.engine.kube",
        "taskflow.engine.watch",
        "taskflow.inputs",
    )
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        ]
        ours = [m for m in modules if m == "taskflow" or m.startswith("taskflow.")]
        if "ctl" in path.relative_to(SRC).parts:
            bad = [m for m in ours if m != "taskflow" and not m.startswith(allowed)]
            assert not bad, f"{path} imports {bad}"
        else:
            assert not [m for m in ours if m.startswith("taskflow.ctl")], f"{path} imports ctl"


def test_console_script_is_declared() -> None:
    text = (SRC.parents[1] / "pyproject.toml").read_text()
    assert 'kubectl-taskflow = "taskflow.ctl:main"' in text


def status_body(
    code: int, reason: str, message: str, kind: str | None = None, name: str = "x"
) -> bytes:
    body: dict[str, object] = {"kind": "Status", "code": code, "reason": reason, "message": message}
    if kind is not None:
        body["details"] = {"name": name, "kind": kind}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("exc", "want"),
    [
        (ApiError(404, status_body(404, "NotFound", 'tasks "x" not found')), 'task "x" not found'),
        (
            ApiError(404, b"404 page not found"),
            "the server does not serve tasks.api.practice.com (is the CRD installed? "
            "`taskflow crd | kubectl apply -f -`)",
        ),
        (
            ApiError(401, status_body(401, "Unauthorized", "Unauthorized")),
            "unauthorized: the credentials were refused (Unauthorized)",
        ),
        (
            ApiError(403, status_body(403, "Forbidden", 'User "bob" cannot get tasks')),
            'forbidden: User "bob" cannot get tasks',
        ),
        (ApiError(500, status_body(500, "InternalError", "etcd is sad")), "etcd is sad"),
        (ApiError(502, b""), "HTTP 502"),
        (ConnectionRefusedError(111, "Connect call failed"), "cannot reach the cluster at H: "),
        (TimeoutError(), "cannot reach the cluster at H: TimeoutError"),
        (ValueError("odd"), "ValueError: odd"),
    ],
)
def test_explain(exc: BaseException, want: str) -> None:
    assert explain(exc, host="H", what='task "x"').startswith(want)


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (status_body(404, "NotFound", 'pods "p" not found', kind="pods", name="p"), True),
        # the API server's answer for a pod bound to a node that does not exist (seen on
        # v1.34): the node's name, as a pod
        (status_body(404, "NotFound", 'pods "n1" not found', kind="pods", name="n1"), False),
        (status_body(404, "NotFound", 'nodes "n" not found', kind="nodes", name="p"), False),
        (status_body(404, "NotFound", "no details"), False),
        (b"404 page not found", False),
        (b"[1]", False),
    ],
)
def test_a_404_names_the_pod_only_when_it_says_so(body: bytes, want: bool) -> None:
    assert _names_pod(body, "p") is want


def test_decode_task_tolerates_what_it_does_not_know_and_refuses_nonsense() -> None:
    view = decode_task({"metadata": {"name": "t"}, "status": None, "future": {"field": 1}})
    assert (view.name, view.word, view.step_names()) == ("t", "Pending", [])
    with pytest.raises(ValueError, match="cannot read the Task"):
        decode_task({"metadata": {"name": 3}})


def test_kubectl_finds_the_plugin() -> None:
    kubectl = tool("kubectl")
    if not pathlib.Path(kubectl).is_file():
        pytest.skip("no kubectl here (the harness builds one: nox -s cluster -- up)")
    scripts = pathlib.Path(sys.executable).parent
    if not (scripts / "kubectl-taskflow").is_file():
        pytest.skip(f"the package is not installed with its scripts in {scripts}")
    env = {"PATH": f"{scripts}:/usr/bin:/bin", "HOME": "/nonexistent"}
    listed = subprocess.run(
        [kubectl, "plugin", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert f"{scripts}/kubectl-taskflow" in listed.stdout, listed.stderr
    helped = subprocess.run(
        [kubectl, "taskflow", "wait", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: kubectl taskflow wait")
