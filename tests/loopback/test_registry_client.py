"""The registry client (engine/registry.py) against real ``docker-registry`` processes on
loopback, one of them with htpasswd auth: images, Docker manifest lists and OCI indexes
pushed through the distribution API by the test."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from taskflow.engine.registry import RegistryClient, RegistryConfig
from taskflow.oci import Credential, ImageCommand, Resolved
from tests.oci_registry import LocalRegistry, local_registry

pytestmark = pytest.mark.loopback  # a fake API server or registry on 127.0.0.1: no cluster

USER = ("taskflow", "s3cret-pass")
GOOD = Credential(*USER)
BAD = Credential("taskflow", "wrong")
AMD, ARM = "linux/amd64", "linux/arm64/v8"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with local_registry(tmp_path_factory.mktemp("plain")) as reg:
        yield reg


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with local_registry(tmp_path_factory.mktemp("locked"), auth=USER) as reg:
        yield reg


@pytest_asyncio.fixture
async def client() -> AsyncIterator[RegistryClient]:
    c = RegistryClient(RegistryConfig(attempts=2, backoff=0.05, request_timeout=5.0))
    try:
        yield c
    finally:
        await c.close()


def _multi(reg: LocalRegistry, repo: str, tag: str, *, docker: bool) -> None:
    amd = reg.push.image(repo, None, entrypoint=["/amd"], cmd=["x"], docker=docker)
    arm = reg.push.image(
        repo, None, entrypoint=["/arm"], cmd=["y"], arch="arm64", variant="v8", docker=docker
    )
    reg.push.index(repo, tag, [(*amd, AMD), (*arm, ARM)], docker=docker)


async def test_an_image(plain: LocalRegistry, client: RegistryClient) -> None:
    plain.push.image("team/app", "v1", entrypoint=["/bin/app"], cmd=["--serve"])
    got = await client.resolve(f"{plain.host}/team/app:v1", [])
    assert got == Resolved(platforms={AMD: ImageCommand(("/bin/app",), ("--serve",))})
    # a Docker v2 schema 2 manifest, no ENTRYPOINT
    plain.push.image("team/old", "v1", cmd=["sh"], docker=True)
    got = await client.resolve(f"{plain.host}/team/old:v1", [])
    assert got == Resolved(platforms={AMD: ImageCommand((), ("sh",))})


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
async def test_every_linux_platform_of_an_index(
    plain: LocalRegistry, client: RegistryClient, docker: bool
) -> None:
    repo = f"multi/{'docker' if docker else 'oci'}"
    _multi(plain, repo, "v1", docker=docker)
    got = await client.resolve(f"{plain.host}/{repo}:v1", [])
    assert got == Resolved(
        platforms={AMD: ImageCommand(("/amd",), ("x",)), ARM: ImageCommand(("/arm",), ("y",))}
    )
    only = await client.resolve(f"{plain.host}/{repo}:v1", [], arch="arm64")
    assert only == Resolved(platforms={ARM: ImageCommand(("/arm",), ("y",))})
    none = await client.resolve(f"{plain.host}/{repo}:v1", [], arch="s390x")
    assert none.error is not None
    assert "the index has no linux/s390x image (it has: linux/amd64, linux/arm64/v8)" in none.error


async def test_not_found_fails_at_once(plain: LocalRegistry, client: RegistryClient) -> None:
    got = await client.resolve(f"{plain.host}/team/app:nope", [])
    assert got.error is not None
    assert got.error.startswith(f"image {plain.host}/team/app:nope: GET http://{plain.host}")
    assert "404 Not Found: MANIFEST_UNKNOWN: manifest unknown" in got.error
    assert client.requests == 1  # not retried


async def test_auth(locked: LocalRegistry, client: RegistryClient) -> None:
    locked.push.image("private/app", "v1", entrypoint=["/secret"])
    image = f"{locked.host}/private/app:v1"
    anonymous = await client.resolve(image, [])
    assert anonymous.error is not None
    assert "401 Unauthorized: UNAUTHORIZED: authentication required" in anonymous.error
    wrong = await client.resolve(image, [BAD])
    assert wrong.error is not None
    assert "401 Unauthorized" in wrong.error
    want = Resolved(platforms={AMD: ImageCommand(("/secret",), ())})
    assert await client.resolve(image, [GOOD]) == want
    # the kubelet tries every matching credential in turn
    assert await client.resolve(image, [BAD, GOOD]) == want
    # cached with GOOD, yet never handed to a Task without credentials
    again = await client.resolve(image, [])
    assert again.error is not None
    assert "401" in again.error


async def test_caches(plain: LocalRegistry) -> None:
    _multi(plain, "cache/me", "v1", docker=False)
    now = [1000.0]
    c = RegistryClient(RegistryConfig(tag_ttl=30.0), clock=lambda: now[0])
    try:
        image = f"{plain.host}/cache/me:v1"
        first = await c.resolve(image, [])
        assert first.error is None
        assert c.requests == 5  # index, 2 manifests, 2 configs
        assert await c.resolve(image, []) == first
        assert c.requests == 5  # all cached
        now[0] += 31  # the tag may have moved: its index is asked again, nothing else
        assert await c.resolve(image, []) == first
        assert c.requests == 6
        # another tag of the same content: its manifests by digest and configs are cached
        _multi(plain, "cache/me", "v2", docker=False)
        assert await c.resolve(f"{plain.host}/cache/me:v2", []) == first
        assert c.requests == 7
    finally:
        await c.close()


async def test_mirror(plain: LocalRegistry) -> None:
    plain.push.image("library/busybox", "9.9", entrypoint=["/bin/sh"])
    c = RegistryClient(RegistryConfig(mirrors={"docker.io": f"http://{plain.host}"}))
    try:
        got = await c.resolve("busybox:9.9", [])
        assert got == Resolved(platforms={AMD: ImageCommand(("/bin/sh",), ())})
    finally:
        await c.close()


async def test_a_registry_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        c = RegistryClient(RegistryConfig(request_timeout=0.5, attempts=3, backoff=0.05))
        try:
            t0 = time.monotonic()
            got = await c.resolve(f"{host}/a/b:1", [])
            took = time.monotonic() - t0
        finally:
            await c.close()
    assert got.error is not None
    assert f"GET http://{host}/v2/a/b/manifests/1: no answer within 0.5s" in got.error
    assert c.requests == 3  # transient: retried, a bounded number of times
    assert 1.5 <= took < 10


async def test_nothing_listens(client: RegistryClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        got = await client.resolve(f"{host}/a/b:1", [])
    assert got.error is not None
    assert "Cannot connect" in got.error
    assert client.requests == 2


async def test_bad_reference(client: RegistryClient) -> None:
    got = await client.resolve("Not A Reference", [])
    assert got.error == "invalid repository in image 'Not A Reference'"
    assert client.requests == 0


async def test_a_derived_image_across_registries(
    plain: LocalRegistry, locked: LocalRegistry, client: RegistryClient
) -> None:
    """The e2e's helper: a real image's layers and config copied, ENTRYPOINT/CMD replaced."""
    layer = plain.push.blob("src/img", b"not really a tarball")
    plain.push.image("src/img", "v1", entrypoint=["/old"], layers=[(layer, 20)])
    digest, size = locked.push.derived(
        f"http://{plain.host}/src/img:v1", "dst/img", entrypoint=["/new"], cmd=["c"]
    )
    locked.push.index("dst/img", "v1", [(digest, size, AMD)])
    got = await client.resolve(f"{locked.host}/dst/img:v1", [GOOD])
    assert got == Resolved(platforms={AMD: ImageCommand(("/new",), ("c",))})


async def test_a_whole_lookup_is_bounded() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        config = RegistryConfig(request_timeout=5.0, attempts=3, lookup_timeout=0.6)
        c = RegistryClient(config)
        try:
            t0 = time.monotonic()
            got = await c.resolve(f"{host}/a/b:1", [])
            took = time.monotonic() - t0
        finally:
            await c.close()
    assert got.error == f"image {host}/a/b:1: no complete answer within 0.6s"
    assert 0.5 <= took < 3
