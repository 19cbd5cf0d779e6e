"""The API resources the engine reads and writes, defined once (watch, writer, operator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from taskflow.api.task import GROUP, PLURAL, VERSION


@dataclass(frozen=True)
class Resource:
    """Where a resource lives in the API: ``/api/v1/pods`` or ``/apis/<g>/<v>/<plural>``."""

    group: str
    version: str
    plural: str

    def collection(self, namespace: str | None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def item(self, namespace: str, name: str, subresource: str = "") -> str:
        path = f"{self.collection(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path


TASKS: Final = Resource(GROUP, VERSION, PLURAL)
PODS: Final = Resource("", "v1", "pods")
EVENTS: Final = Resource("", "v1", "events")
SECRETS: Final = Resource("", "v1", "secrets")
SERVICE_ACCOUNTS: Final = Resource("", "v1", "serviceaccounts")
