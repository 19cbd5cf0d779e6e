"""The registry client's Bearer flow (Docker Hub, ghcr.io, quay.io work this way) against a
real ``docker-registry`` with token auth and a token server written here: RS256 JWTs signed
by ``openssl`` with a throwaway key whose self-signed certificate the registry trusts."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_asyncio

from taskflow.engine.registry import RegistryClient, RegistryConfig
from taskflow.oci import Credential, ImageCommand, Resolved
from tests.oci_registry import LocalRegistry, local_registry

pytestmark = pytest.mark.loopback  # a fake API server or registry on 127.0.0.1: no cluster

USER = ("hub-user", "hub-pass")
SERVICE = "taskflow-test-registry"
ISSUER = "taskflow-test-issuer"
AMD = "linux/amd64"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """``GET /token?service=&scope=repository:R:pull``: a JWT granting pull on R to the
    Basic user ``USER`` (401 for anyone else; anonymous gets a token without access, as
    Docker Hub does for private repositories)."""

    key: Path
    cert: Path
    port: int = 0
    asked: list[dict[str, list[str]]] = field(default_factory=list)

    def jwt(self, repo: str | None) -> str:
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        access = [{"type": "repository", "name": repo, "actions": ["pull"]}] if repo else []
        claims = {
            "iss": ISSUER,
            "sub": USER[0] if repo else "",
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part).encode()) for part in (header, claims)
        ).encode()
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input,
            check=True,
            capture_output=True,
        ).stdout
        return f"{signing_input.decode()}.{_b64url(sig)}"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    d = tmp_path_factory.mktemp("token")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=taskflow-test-token", "-keyout", str(d / "key.pem")),
            *("-out", str(d / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    server = TokenServer(d / "key.pem", d / "cert.pem")
    good = "Basic " + base64.b64encode(":".join(USER).encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            server.asked.append(query)
            given = self.headers.get("Authorization")
            if given is not None and given != good:
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b'{"details":"incorrect username or password"}')
                return
            scope = query.get("scope", [""])[0].split(":")
            repo = scope[1] if given == good and len(scope) == 3 else None
            body = json.dumps({"token": server.jwt(repo), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[LocalRegistry]:
    """A token-auth registry; images are pushed through a second, open registry on the
    same storage."""
    storage = tmp_path_factory.mktemp("hub-storage")
    with local_registry(tmp_path_factory.mktemp("open"), storage=storage) as open_reg:
        open_reg.push.image("team/private", "v1", entrypoint=["/hub"], cmd=["c"])
    token = {
        "realm": f"http://127.0.0.1:{token_server.port}/token",
        "service": SERVICE,
        "issuer": ISSUER,
        "rootcertbundle": str(token_server.cert),
    }
    with local_registry(tmp_path_factory.mktemp("hub"), token=token, storage=storage) as reg:
        yield reg


@pytest_asyncio.fixture
async def client() -> AsyncIterator[RegistryClient]:
    c = RegistryClient(RegistryConfig(attempts=1))
    try:
        yield c
    finally:
        await c.close()


async def test_bearer_token_with_credentials(
    hub: LocalRegistry, token_server: TokenServer, client: RegistryClient
) -> None:
    token_server.asked.clear()
    got = await client.resolve(f"{hub.host}/team/private:v1", [Credential(*USER)])
    assert got == Resolved(platforms={AMD: ImageCommand(("/hub",), ("c",))})
    # one token for the repository, asked with the challenge's service and a pull scope
    assert token_server.asked == [{"scope": ["repository:team/private:pull"], "service": [SERVICE]}]


async def test_bearer_without_access_is_the_registrys_401(
    hub: LocalRegistry, client: RegistryClient
) -> None:
    got = await client.resolve(f"{hub.host}/team/private:v1", [])
    assert got.error is not None
    assert "401 Unauthorized: UNAUTHORIZED: authentication required" in got.error


async def test_bearer_realm_refuses_wrong_credentials(
    hub: LocalRegistry, token_server: TokenServer, client: RegistryClient
) -> None:
    got = await client.resolve(f"{hub.host}/team/private:v1", [Credential(USER[0], "wrong")])
    assert got.error is not None
    assert f"token from http://127.0.0.1:{token_server.port}/token: 401" in got.error
    # the next credential is tried, as the kubelet does
    ok = await client.resolve(
        f"{hub.host}/team/private:v1", [Credential(USER[0], "wrong"), Credential(*USER)]
    )
    assert ok.error is None, ok.error
