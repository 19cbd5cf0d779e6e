"""Registry authentication, pure: ``WWW-Authenticate`` challenges, pull secrets, and which
credentials an image gets (the kubelet's keyring rules)."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import msgspec

from taskflow.oci._ref import DOCKER_HUB, Reference

_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKERCONFIGJSON: Final = ("kubernetes.io/dockerconfigjson", ".dockerconfigjson")
DOCKERCFG: Final = ("kubernetes.io/dockercfg", ".dockercfg")


class Challenge(msgspec.Struct, frozen=True):
    """One challenge of a 401's ``WWW-Authenticate``: ``scheme`` lower-cased, its params
    (``realm``, ``service``, ``scope``) with lower-cased names."""

    scheme: str
    params: dict[str, str] = {}


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _token(text: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(text) and text[j] not in ' \t,="':
        j += 1
    return text[i:j], j


def _quoted(text: str, i: int) -> tuple[str, int]:
    out, i = [], i + 1  # past the opening quote
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def parse_challenge(header: str) -> list[Challenge]:
    """``Bearer realm="https://a/token",service="reg",scope="repository:x:pull"`` ->
    ``[Challenge("bearer", {...})]`` (RFC 7235: several challenges may share one header;
    a challenge's params are ``name=token`` or ``name="quoted"``)."""
    out: list[Challenge] = []
    i = 0
    while True:
        i = _skip(header, i, " \t,")
        if i >= len(header):
            return out
        scheme, i = _token(header, i)
        if not scheme:  # garbage: stop rather than loop
            return out
        params: dict[str, str] = {}
        while True:
            j = _skip(header, i, " \t,")
            name, k = _token(header, j)
            k2 = _skip(header, k, " \t")
            if not name or k2 >= len(header) or header[k2] != "=":
                break  # the next challenge's scheme (or the end)
            k2 = _skip(header, k2 + 1, " \t")
            if k2 < len(header) and header[k2] == '"':
                value, i = _quoted(header, k2)
            else:
                value, i = _token(header, k2)
            params[name.lower()] = value
        out.append(Challenge(scheme.lower(), params))
        i = j


class Credential(msgspec.Struct, frozen=True):
    username: str
    password: str

    def basic(self) -> str:
        """The ``Authorization`` value of HTTP Basic with these credentials."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class _Entry(msgspec.Struct):
    username: str = ""
    password: str = ""
    auth: str = ""


class SecretError(ValueError):
    """A pull secret whose content cannot be read."""


def _entries(raw: bytes, nested: bool) -> list[tuple[str, Credential]]:
    try:
        doc = json.loads(raw)
        if nested:
            doc = doc.get("auths") or {}
        entries = msgspec.convert(doc, dict[str, _Entry])
    except (ValueError, AttributeError, msgspec.ValidationError) as e:
        raise SecretError(f"unreadable docker config: {e}") from None
    out: list[tuple[str, Credential]] = []
    for key, entry in entries.items():
        user, password = entry.username, entry.password
        if entry.auth:  # the kubelet lets "auth" (base64 user:password) win
            try:
                user, _, password = base64.b64decode(entry.auth).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise SecretError(f"unreadable auth of {key!r}") from None
        out.append((key, Credential(user, password)))
    return out


def keyring_from_secret(secret_type: str, data: Mapping[str, str]) -> list[tuple[str, Credential]]:
    """(key, credential) pairs of an image pull secret (``data`` as the API returns it,
    base64). Only ``kubernetes.io/dockerconfigjson`` (``.dockerconfigjson``) and
    ``kubernetes.io/dockercfg`` (``.dockercfg``) count, as for the kubelet; others give
    nothing."""
    for (kind, field), nested in ((DOCKERCONFIGJSON, True), (DOCKERCFG, False)):
        if secret_type == kind and data.get(field):
            try:
                raw = base64.b64decode(data[field], validate=True)
            except binascii.Error:
                raise SecretError(f"{field} is not base64") from None
            return _entries(raw, nested)
    return []


def _split_key(key: str) -> tuple[str, str, str]:
    """A keyring key (``https://index.docker.io/v1/``, ``reg:5000/team``,
    ``*.example.com``) -> (host, port, path), docker.io's aliases folded."""
    url = key if key.startswith(("http://", "https://")) else f"https://{key}"
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = str(parts.port or "") if ":" in parts.netloc else ""
    path = parts.path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    if host in _HUB_ALIASES:
        host, path = DOCKER_HUB, ("" if path in ("", "/") else path)
    return host, port, path.strip("/")


def _matches(key: str, ref: Reference) -> bool:
    host, port, path = _split_key(key)
    image_host, _, image_port = ref.registry.partition(":")
    labels, image_labels = host.split("."), image_host.lower().split(".")
    if len(labels) != len(image_labels) or port != image_port:
        return False
    if not all(fnmatch.fnmatchcase(t, g) for g, t in zip(labels, image_labels, strict=True)):
        return False
    return ref.repository.startswith(path)  # the kubelet's prefix rule


def match_credentials(keyring: list[tuple[str, Credential]], ref: Reference) -> list[Credential]:
    """The credentials the kubelet would try for ``ref``, most specific key first (the
    kubelet sorts its keys in reverse order), without repeats."""
    found = sorted((k for k in keyring if _matches(k[0], ref)), key=lambda k: k[0], reverse=True)
    out: list[Credential] = []
    for _, cred in found:
        if cred not in out:
            out.append(cred)
    return out
