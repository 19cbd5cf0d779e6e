"""Reading an image's ENTRYPOINT/CMD from its registry: the pure parts (no I/O, and no
imports from the rest of taskflow). The I/O is ``taskflow.engine.registry``.

* :mod:`._ref`: image references (``busybox:1.28`` -> ``docker.io/library/busybox:1.28``).
* :mod:`._manifest`: media types, manifests, indexes, platforms, image configs.
* :mod:`._command`: the kubelet's rules for command/args vs ENTRYPOINT/CMD.
* :mod:`._auth`: ``WWW-Authenticate`` challenges, pull secrets and the kubelet's keyring.
"""

from taskflow.oci._auth import (
    Challenge,
    Credential,
    SecretError,
    keyring_from_secret,
    match_credentials,
    parse_challenge,
)
from taskflow.oci._command import ImageCommand, Resolved, step_argv
from taskflow.oci._manifest import (
    ACCEPT,
    INDEX_TYPES,
    MANIFEST_TYPES,
    ImageManifest,
    IndexEntry,
    ManifestError,
    parse_config,
    parse_manifest,
    select_platforms,
)
from taskflow.oci._ref import (
    DOCKER_HUB,
    InvalidReference,
    Reference,
    is_loopback_host,
    parse_reference,
)

__all__ = [
    "ACCEPT",
    "DOCKER_HUB",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "Challenge",
    "Credential",
    "ImageCommand",
    "ImageManifest",
    "IndexEntry",
    "InvalidReference",
    "ManifestError",
    "Reference",
    "Resolved",
    "SecretError",
    "is_loopback_host",
    "keyring_from_secret",
    "match_credentials",
    "parse_challenge",
    "parse_config",
    "parse_manifest",
    "parse_reference",
    "select_platforms",
    "step_argv",
]
