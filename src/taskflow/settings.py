"""Tunables of the pure core (timeouts after which a stuck step is declared failed)."""

from __future__ import annotations

from typing import Literal

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and limits used by :mod:`taskflow.status` and :mod:`taskflow.reconcile`.

    Every duration is in seconds.
    """

    #: A step whose image pull keeps failing (``ErrImagePull`` / ``ImagePullBackOff``) this
    #: long after the step became current fails the Task with ``ImagePullFailed``.
    #: ``InvalidImageName``, an image the registry does not have and one without the node's
    #: platform fail at once (``status/_pull.py``).
    image_pull_timeout: float = 300.0
    #: A step stuck in ``CreateContainerConfigError`` (missing Secret / ConfigMap / key) or
    #: ``CreateContainerError`` this long fails the Task with ``ContainerConfigError``.
    config_error_timeout: float = 120.0
    #: A Task without ``spec.timeout`` fails ``TimedOut`` this long after its creation, so
    #: that no Task waits forever by default (Tekton's default too). 0 = no limit.
    default_timeout: float = 3600.0
    #: A finished Task without ``spec.ttlSecondsAfterFinished`` is deleted this long after it
    #: finished. None = kept.
    default_ttl_after_finished: float | None = None
    #: The executor of a Task without ``spec.executor`` whose steps use no agent-only field.
    #: (`taskflow run --default-executor`; the agent runs the seed's examples unchanged.)
    default_executor: Literal["agent", "kubelet"] = "agent"
    #: The image whose ``/taskflow-agent`` is installed into agent pods; "" = the one
    #: released with the operator (:func:`taskflow.render.agent_image`).
    agent_image: str = ""
    #: The API server runs native sidecars (init containers with ``restartPolicy: Always``,
    #: Kubernetes 1.29+). Without them a Task with ``spec.sidecars`` ends
    #: ``Failure/Unsupported`` before any pod exists (an older server would drop the field
    #: and run the sidecar as an init container that never ends).
    native_sidecars: bool = True

    def __post_init__(self) -> None:
        timeouts = (
            self.image_pull_timeout,
            self.config_error_timeout,
            self.default_timeout,
            self.default_ttl_after_finished or 0.0,
        )
        if any(t < 0 for t in timeouts):
            raise ValueError("timeouts must not be negative")


DEFAULT_SETTINGS = Settings()
