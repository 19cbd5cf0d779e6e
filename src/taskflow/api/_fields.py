"""The markers the Task API's structs carry into the CRD: Kubernetes types, CEL rules,
descriptions, formats (:mod:`taskflow.api.schema` reads them)."""

from __future__ import annotations

from typing import Any

import msgspec


def K8sType(openapi_type: str) -> msgspec.Meta:
    """Mark a loosely typed field as holding the Kubernetes type ``openapi_type``.

    ``openapi_type`` uses kubernetes-asyncio's ``openapi_types`` notation, e.g.
    ``"list[V1EnvVar]"`` or ``"V1ResourceRequirements"``.
    """
    return msgspec.Meta(extra={"k8s": openapi_type})


def _rule(rule: str, message: str, message_expression: str | None = None) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if message_expression is not None:
        out["messageExpression"] = message_expression
    return out


def _rules(*rules: dict[str, str]) -> msgspec.Meta:
    return msgspec.Meta(extra_json_schema={"x-kubernetes-validations": list(rules)})


def _doc(text: str) -> msgspec.Meta:
    return msgspec.Meta(description=text)


_datetime = msgspec.Meta(extra_json_schema={"format": "date-time"})

_Obj = dict[str, Any]
_Objs = list[dict[str, Any]]
