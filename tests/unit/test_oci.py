"""The pure registry-lookup parts (taskflow.oci): tables."""

from __future__ import annotations

import base64
import json

import pytest

from taskflow.oci import (
    Challenge,
    Credential,
    ImageCommand,
    IndexEntry,
    InvalidReference,
    ManifestError,
    Reference,
    SecretError,
    is_loopback_host,
    keyring_from_secret,
    match_credentials,
    parse_challenge,
    parse_config,
    parse_manifest,
    parse_reference,
    select_platforms,
    step_argv,
)
from taskflow.oci._manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageManifest,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "want"),
    [
        ("busybox", Reference("docker.io", "library/busybox", "latest")),
        ("busybox:1.28", Reference("docker.io", "library/busybox", "1.28")),
        ("library/busybox:1.28", Reference("docker.io", "library/busybox", "1.28")),
        ("docker.io/busybox", Reference("docker.io", "library/busybox", "latest")),
        ("index.docker.io/x/y:2", Reference("docker.io", "x/y", "2")),
        ("registry-1.docker.io/x/y", Reference("docker.io", "x/y", "latest")),
        (
            "devopscube/kubernetes-job-demo",
            Reference("docker.io", "devopscube/kubernetes-job-demo", "latest"),
        ),
        ("registry.k8s.io/pause:3.10", Reference("registry.k8s.io", "pause", "3.10")),
        ("127.0.0.1:35000/a/b", Reference("127.0.0.1:35000", "a/b", "latest")),
        ("localhost/a", Reference("localhost", "a", "latest")),
        ("localhost:5000/a:t", Reference("localhost:5000", "a", "t")),
        (f"busybox@{D}", Reference("docker.io", "library/busybox", None, D)),
        (f"q.io/a:1@{D}", Reference("q.io", "a", "1", D)),
        ("[::1]:5000/a", Reference("[::1]:5000", "a", "latest")),
    ],
)
def test_parse_reference(image: str, want: Reference) -> None:
    assert parse_reference(image) == want


def test_reference_parts() -> None:
    ref = parse_reference(f"busybox:1@{D}")
    assert (ref.reference, ref.api_host, str(ref)) == (
        D,
        "registry-1.docker.io",
        f"docker.io/library/busybox:1@{D}",
    )
    assert parse_reference("q.io/a").reference == "latest"
    assert parse_reference("q.io/a").api_host == "q.io"


@pytest.mark.parametrize(
    "image",
    ["", "Busybox", "a b", "q.io/a:", "busybox@sha256:short", "q.io/A/b", "x/:1", "a:bad/tag"],
)
def test_parse_reference_rejects(image: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(image)


@pytest.mark.parametrize(
    ("host", "want"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:35000", True),
        ("127.9.9.9", True),
        ("[::1]:5000", True),
        ("10.213.0.1:35000", False),
        ("docker.io", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback_host(host: str, want: bool) -> None:
    assert is_loopback_host(host) is want


@pytest.mark.parametrize(
    ("args", "image", "want"),
    [
        ([], ImageCommand(("/ep",), ("a", "b")), ["/ep", "a", "b"]),
        (["x"], ImageCommand(("/ep",), ("a", "b")), ["/ep", "x"]),
        ([], ImageCommand((), ("sh", "-c", "x")), ["sh", "-c", "x"]),
        (["only"], ImageCommand((), ("cmd",)), ["only"]),
        ([], ImageCommand(), None),
    ],
)
def test_step_argv(args: list[str], image: ImageCommand, want: list[str] | None) -> None:
    assert step_argv(args, image) == want


def _index(media: str | None) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "manifests": [
            {"digest": "sha256:1", "platform": {"os": "linux", "architecture": "amd64"}},
            {
                "digest": "sha256:2",
                "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
            },
            {"digest": "sha256:3", "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
    }
    if media:
        doc["mediaType"] = media
    return json.dumps(doc).encode()


@pytest.mark.parametrize("media", [OCI_INDEX, DOCKER_LIST])
def test_parse_index(media: str) -> None:
    want = [
        IndexEntry("sha256:1", "linux/amd64"),
        IndexEntry("sha256:2", "linux/arm/v7"),
        IndexEntry("sha256:3", "unknown/unknown"),
    ]
    assert parse_manifest(_index(media), "application/json") == want
    # an OCI index may leave mediaType out: the Content-Type says it
    assert parse_manifest(_index(None), f"{media}; charset=utf-8") == want


@pytest.mark.parametrize("media", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_parse_image_manifest(media: str) -> None:
    body = json.dumps({"mediaType": media, "config": {"digest": D}, "layers": []}).encode()
    assert parse_manifest(body, "") == ImageManifest(D)


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"{", OCI_MANIFEST),
        (b'{"mediaType": "application/vnd.docker.distribution.manifest.v1+json"}', ""),
        (json.dumps({"mediaType": OCI_MANIFEST}).encode(), ""),
    ],
)
def test_parse_manifest_rejects(body: bytes, ctype: str) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(body, ctype)


def test_select_platforms() -> None:
    entries = [
        IndexEntry("sha256:1", "linux/amd64"),
        IndexEntry("sha256:2", "linux/arm64/v8"),
        IndexEntry("sha256:9", "linux/amd64"),
        IndexEntry("sha256:3", "unknown/unknown"),
        IndexEntry("sha256:4", "windows/amd64"),
        IndexEntry("sha256:5", ""),
    ]
    assert select_platforms(entries, None) == {
        "linux/amd64": "sha256:1",
        "linux/arm64/v8": "sha256:2",
    }
    assert select_platforms(entries, "arm64") == {"linux/arm64/v8": "sha256:2"}
    assert select_platforms(entries, "s390x") == {}


@pytest.mark.parametrize(
    ("config", "want"),
    [
        (
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": ["/a"], "Cmd": ["b"]},
            },
            ("linux/amd64", ImageCommand(("/a",), ("b",))),
        ),
        (
            {
                "architecture": "arm",
                "variant": "v7",
                "os": "linux",
                "config": {"Entrypoint": None, "Cmd": ["sh"]},
            },
            ("linux/arm/v7", ImageCommand((), ("sh",))),
        ),
        ({"architecture": "amd64", "os": "linux"}, ("linux/amd64", ImageCommand())),
    ],
)
def test_parse_config(config: dict[str, object], want: tuple[str, ImageCommand]) -> None:
    assert parse_config(json.dumps(config).encode()) == want


def test_parse_config_rejects() -> None:
    with pytest.raises(ManifestError):
        parse_config(b'{"config": {"Cmd": "not a list"}}')


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/busybox:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull",
                    },
                )
            ],
        ),
        (
            "Bearer realm=http://x/t, service=reg",
            [Challenge("bearer", {"realm": "http://x/t", "service": "reg"})],
        ),
        (
            'Basic realm="a\\"b", Bearer realm="r"',
            [Challenge("basic", {"realm": 'a"b'}), Challenge("bearer", {"realm": "r"})],
        ),
        ("Negotiate", [Challenge("negotiate")]),
        ("", []),
        ("=", []),
    ],
)
def test_parse_challenge(header: str, want: list[Challenge]) -> None:
    assert parse_challenge(header) == want


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_keyring_from_secret() -> None:
    cfg = {"auths": {"reg.io": {"username": "u", "password": "p"}, "q.io": {"auth": _b64("a:b:c")}}}
    got = keyring_from_secret(
        "kubernetes.io/dockerconfigjson", {".dockerconfigjson": _b64(json.dumps(cfg))}
    )
    assert got == [("reg.io", Credential("u", "p")), ("q.io", Credential("a", "b:c"))]
    old = {"https://index.docker.io/v1/": {"username": "h", "password": "x"}}
    assert keyring_from_secret(
        "kubernetes.io/dockercfg", {".dockercfg": _b64(json.dumps(old))}
    ) == [("https://index.docker.io/v1/", Credential("h", "x"))]
    # the type decides, as for the kubelet
    assert keyring_from_secret("Opaque", {".dockerconfigjson": _b64(json.dumps(cfg))}) == []
    assert (
        keyring_from_secret("kubernetes.io/dockercfg", {".dockerconfigjson": _b64(json.dumps(cfg))})
        == []
    )


@pytest.mark.parametrize(
    "data",
    [
        {".dockerconfigjson": "!!"},
        {".dockerconfigjson": _b64("[1]")},
        {".dockerconfigjson": _b64("{")},
    ],
)
def test_keyring_from_secret_rejects(data: dict[str, str]) -> None:
    with pytest.raises(SecretError):
        keyring_from_secret("kubernetes.io/dockerconfigjson", data)


A, B, C = Credential("a", "1"), Credential("b", "2"), Credential("c", "3")


@pytest.mark.parametrize(
    ("keys", "image", "want"),
    [
        ([("reg.io", A)], "reg.io/x/y", [A]),
        ([("https://reg.io", A)], "reg.io/x", [A]),
        ([("reg.io", A)], "other.io/x", []),
        ([("reg.io:5000", A)], "reg.io/x", []),
        ([("reg.io", A)], "reg.io:5000/x", []),
        ([("127.0.0.1:35001", A)], "127.0.0.1:35001/x", [A]),
        ([("*.reg.io", A)], "eu.reg.io/x", [A]),
        ([("*.reg.io", A)], "reg.io/x", []),
        ([("reg.io/team", A), ("reg.io", B)], "reg.io/team/x", [A, B]),
        ([("reg.io/team", A), ("reg.io", B)], "reg.io/other/x", [B]),
        ([("https://index.docker.io/v1/", A)], "busybox", [A]),
        ([("docker.io", A)], "library/busybox", [A]),
        ([("index.docker.io", A)], "docker.io/x/y", [A]),
        ([("registry-1.docker.io", A)], "x/y", [A]),
        ([("docker.io", A), ("index.docker.io", A), ("q.io", C)], "busybox", [A]),
        ([("https://index.docker.io/v1/", A)], "quay.io/x", []),
    ],
)
def test_match_credentials(
    keys: list[tuple[str, Credential]], image: str, want: list[Credential]
) -> None:
    assert match_credentials(keys, parse_reference(image)) == want


def test_basic() -> None:
    assert Credential("u", "p").basic() == "Basic dTpw"
