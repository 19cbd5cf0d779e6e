"""What a container runs, by the kubelet's rules, and the data the engine hands render.

The kubelet (``kuberuntime``'s ``determineEffectiveCommand`` via the runtime): a container
with ``command`` runs ``command + args`` and the image's ENTRYPOINT and CMD are ignored;
with only ``args`` it runs ``ENTRYPOINT + args``; with neither ``ENTRYPOINT + CMD``.
"""

from __future__ import annotations

import msgspec


class ImageCommand(msgspec.Struct, frozen=True):
    """An image config's ``Entrypoint`` and ``Cmd`` (null and absent are empty)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


class Resolved(msgspec.Struct, frozen=True):
    """The answer of a registry lookup for one image: per platform (``linux/amd64``,
    ``linux/arm/v7``) its ENTRYPOINT/CMD, or why there is none (``error``, the registry's
    answer)."""

    platforms: dict[str, ImageCommand] = {}
    error: str | None = None


def step_argv(args: list[str], image: ImageCommand) -> list[str] | None:
    """The argv of a container without ``command``: ``ENTRYPOINT + args`` when it has args,
    else ``ENTRYPOINT + CMD``; None when that is empty (the runtime refuses such a
    container: "no command specified")."""
    argv = [*image.entrypoint, *args] if args else [*image.entrypoint, *image.cmd]
    return argv or None
