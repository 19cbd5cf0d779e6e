"""Tunables of the pure core (timeouts after which a stuck step is declared failed)."""

from __future__ import annotations

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and limits used by :mod:`taskflow.status` and :mod:`taskflow.reconcile`.

    Every duration is in seconds.
    """

    #: A step whose image pull keeps failing (``ErrImagePull`` / ``ImagePullBackOff``) this
    #: long after the step became current fails the Task with ``ImagePullFailed``.
    #: ``InvalidImageName`` fails at once.
    image_pull_timeout: float = 300.0
    #: A step stuck in ``CreateContainerConfigError`` (missing Secret / ConfigMap / key) or
    #: ``CreateContainerError`` this long fails the Task with ``ContainerConfigError``.
    config_error_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.image_pull_timeout < 0 or self.config_error_timeout < 0:
            raise ValueError("timeouts must not be negative")


DEFAULT_SETTINGS = Settings()
