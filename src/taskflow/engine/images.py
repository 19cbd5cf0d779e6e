"""The images a Task's agent steps need looked up, with the Task's pull credentials.

Which credentials: the ones the kubelet would use for the pod. The ServiceAccount admission
plugin copies the service account's ``imagePullSecrets`` into a pod only when the pod names
none itself, so: the Task's ``podTemplate.imagePullSecrets`` if any, else those of its
service account (``podTemplate.serviceAccountName``, else ``default``). A secret or service
account that does not exist is skipped (the kubelet pulls without it too); any other API
error is raised, and the reconcile is retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import msgspec

from taskflow.api.task import Task
from taskflow.engine.kube import ApiError, Kube
from taskflow.engine.registry import RegistryClient
from taskflow.engine.resources import SECRETS, SERVICE_ACCOUNTS
from taskflow.oci import (
    Credential,
    InvalidReference,
    Resolved,
    SecretError,
    keyring_from_secret,
    match_credentials,
    parse_reference,
)

log = logging.getLogger("taskflow.registry")

ARCH_LABEL = "kubernetes.io/arch"


class _Ref(msgspec.Struct):
    name: str = ""


class _ServiceAccount(msgspec.Struct, rename="camel"):
    image_pull_secrets: list[_Ref] = []


class _Secret(msgspec.Struct):
    type: str = ""
    data: dict[str, str] = {}


class ImageResolver:
    """Looks up images for Tasks: pull secrets from the API, answers from the registry."""

    def __init__(self, kube: Kube, client: RegistryClient) -> None:
        self.kube = kube
        self.client = client

    async def secret_names(self, task: Task) -> list[str]:
        tpl = task.spec.pod_template
        own = [str(r.get("name", "")) for r in (tpl.image_pull_secrets if tpl else [])]
        if any(own):
            return [n for n in own if n]
        account = (tpl.service_account_name if tpl else None) or "default"
        ns = task.metadata.namespace or "default"
        try:
            raw = await self.kube.request("GET", SERVICE_ACCOUNTS.item(ns, account))
        except ApiError as e:
            if e.status == 404:
                return []
            raise
        sa = msgspec.json.decode(raw, type=_ServiceAccount)
        return [r.name for r in sa.image_pull_secrets if r.name]

    async def keyring(self, task: Task) -> list[tuple[str, Credential]]:
        ns = task.metadata.namespace or "default"
        out: list[tuple[str, Credential]] = []
        for name in await self.secret_names(task):
            try:
                raw = await self.kube.request("GET", SECRETS.item(ns, name))
            except ApiError as e:
                if e.status == 404:
                    log.info("image pull secret %s/%s not found: skipped", ns, name)
                    continue
                raise
            secret = msgspec.json.decode(raw, type=_Secret)
            try:
                out += keyring_from_secret(secret.type, secret.data)
            except SecretError as e:
                log.warning("image pull secret %s/%s skipped: %s", ns, name, e)
        return out

    async def resolve(self, task: Task, images: Iterable[str]) -> dict[str, Resolved]:
        """image -> its ENTRYPOINT/CMD per platform (or the lookup's failure)."""
        keyring = await self.keyring(task)
        tpl = task.spec.pod_template
        arch = (tpl.node_selector.get(ARCH_LABEL) if tpl else None) or None
        out: dict[str, Resolved] = {}
        for image in dict.fromkeys(images):
            try:
                creds = match_credentials(keyring, parse_reference(image))
            except InvalidReference:
                creds = []  # resolve() says what is wrong with it
            out[image] = await self.client.resolve(image, creds, arch)
        return out
