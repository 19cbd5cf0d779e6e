"""Image references, normalised as the kubelet and containerd do (docker's rules)."""

from __future__ import annotations

import re
from typing import Final

import msgspec

DOCKER_HUB: Final = "docker.io"
#: where docker.io's distribution API answers
DOCKER_HUB_API: Final = "registry-1.docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY: Final = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG: Final = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST: Final = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_DOMAIN: Final = re.compile(
    r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$"
)


class InvalidReference(ValueError):
    """Not an image reference the kubelet would pull."""


class Reference(msgspec.Struct, frozen=True):
    #: ``docker.io``, ``registry.k8s.io``, ``127.0.0.1:35000`` (docker.io's aliases folded)
    registry: str
    #: ``library/busybox``
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask ``/v2/<repository>/manifests/`` for: the digest wins over the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        """The host (and port) of the registry's API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def _is_domain(first: str) -> bool:
    # docker's rule: the first component names a registry if it has a dot or a port, or is
    # localhost, or has upper-case letters (never valid in a repository)
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def parse_reference(image: str) -> Reference:
    """``busybox:1.28`` -> ``docker.io/library/busybox:1.28``; a reference without tag or
    digest gets ``latest``; ``name:tag@digest`` keeps both (the digest is what is used)."""
    rest, digest = image, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(f"invalid digest in image {image!r}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag in image {image!r}")
    first, sep, remainder = rest.partition("/")
    if sep and _is_domain(first):
        if not _DOMAIN.match(first):
            raise InvalidReference(f"invalid registry host in image {image!r}")
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, rest
    if registry.lower() in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY.match(repository):
        raise InvalidReference(f"invalid repository in image {image!r}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 (with or without a port): plain http by default, as
    containerd does."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    return name == "localhost" or name == "::1" or name.startswith("127.")
