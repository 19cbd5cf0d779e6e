"""Manifests, indexes and image configs: OCI and Docker v2 schema 2."""

from __future__ import annotations

from typing import Final

import msgspec

from taskflow.oci._command import ImageCommand

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: the ``Accept`` header of a manifest GET: all four, nothing older (schema 1 is gone)
ACCEPT: Final = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


class ManifestError(ValueError):
    """A manifest or config taskflow cannot read."""


class _Platform(msgspec.Struct):
    architecture: str = ""
    os: str = ""
    variant: str = ""


class _Descriptor(msgspec.Struct, rename="camel"):
    digest: str
    media_type: str = ""
    platform: _Platform | None = None


class _Manifest(msgspec.Struct, rename="camel"):
    media_type: str = ""
    manifests: list[_Descriptor] | None = None
    config: _Descriptor | None = None


class IndexEntry(msgspec.Struct, frozen=True):
    digest: str
    #: ``linux/amd64``, ``linux/arm/v7``
    platform: str


class ImageManifest(msgspec.Struct, frozen=True):
    config_digest: str


def _platform(p: _Platform) -> str:
    return "/".join(x for x in (p.os, p.architecture, p.variant) if x)


def parse_manifest(body: bytes, content_type: str) -> list[IndexEntry] | ImageManifest:
    """An index's entries (``list``) or an image manifest's config digest. The media type is
    the body's ``mediaType`` when it has one, else the answer's ``Content-Type``."""
    try:
        m = msgspec.json.decode(body, type=_Manifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ManifestError(f"unreadable manifest: {e}") from None
    media = m.media_type or content_type.split(";")[0].strip()
    if media in INDEX_TYPES or (not media and m.manifests is not None):
        return [
            IndexEntry(digest=d.digest, platform=_platform(d.platform) if d.platform else "")
            for d in m.manifests or []
        ]
    if media in MANIFEST_TYPES or (not media and m.config is not None):
        if m.config is None:
            raise ManifestError("image manifest without config")
        return ImageManifest(config_digest=m.config.digest)
    raise ManifestError(f"unsupported manifest media type {media!r}")


def select_platforms(entries: list[IndexEntry], arch: str | None) -> dict[str, str]:
    """platform -> manifest digest of an index's linux images (only ``arch`` when the Task's
    nodeSelector names one); attestations (``unknown/unknown``) and other OSes are skipped,
    and the first entry of a platform wins, as containerd's matcher does."""
    out: dict[str, str] = {}
    for e in entries:
        parts = e.platform.split("/")
        if len(parts) < 2 or parts[0] != "linux" or parts[1] in ("", "unknown"):
            continue
        if arch is not None and parts[1] != arch:
            continue
        out.setdefault(e.platform, e.digest)
    return out


class _Config(msgspec.Struct, rename={"entrypoint": "Entrypoint", "cmd": "Cmd"}):
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None


class _ImageConfig(msgspec.Struct):
    config: _Config | None = None
    architecture: str = ""
    os: str = ""
    variant: str = ""


def parse_config(body: bytes) -> tuple[str, ImageCommand]:
    """An image config blob -> (its platform, its ENTRYPOINT/CMD)."""
    try:
        c = msgspec.json.decode(body, type=_ImageConfig)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ManifestError(f"unreadable image config: {e}") from None
    cfg = c.config or _Config()
    platform = _platform(_Platform(c.architecture, c.os, c.variant))
    return platform, ImageCommand(tuple(cfg.entrypoint or ()), tuple(cfg.cmd or ()))
