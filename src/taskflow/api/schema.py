"""msgspec types -> structural OpenAPI v3 schema (the CRD's ``openAPIV3Schema``).

Two sources feed one schema:

* taskflow's own msgspec structs (:mod:`taskflow.api.task`), converted by walking
  :func:`msgspec.inspect.type_info`: constraints (``msgspec.Meta``) become
  ``minItems``/``maxLength``/..., ``extra_json_schema`` is merged verbatim (descriptions,
  ``x-kubernetes-validations``), ``Literal`` becomes ``enum``;
* nested Kubernetes types, marked with :func:`taskflow.api.K8sType`, expanded
  recursively from kubernetes-asyncio's model metadata (``openapi_types``,
  ``attribute_map``, required-ness from the generated setters, descriptions from the
  property docstrings).

The result is *structural* (every node typed, no ``$ref``, no ``additionalProperties``
next to ``properties``): int-or-string fields carry ``x-kubernetes-int-or-string``, quantities
the ``anyOf: [integer, string]`` + pattern form Kubernetes' own CRDs use, and a recursive or
too deep Kubernetes type is cut off with ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from typing import Any, Final

import kubernetes_asyncio.client.models as k8s_models
import msgspec
import msgspec.inspect as mi

Schema = dict[str, Any]

#: The canonical Quantity grammar (the pattern controller-gen emits for resource.Quantity).
QUANTITY_PATTERN: Final = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

#: (model, wire name) of core/v1 fields holding a resource.Quantity (kubernetes-asyncio types
#: them as plain ``str``). A unit test cross-checks this table against the Kubernetes OpenAPI
#: document when one is available.
QUANTITY_FIELDS: Final = frozenset(
    {
        ("V1ResourceRequirements", "limits"),
        ("V1ResourceRequirements", "requests"),
        ("V1VolumeResourceRequirements", "limits"),
        ("V1VolumeResourceRequirements", "requests"),
        ("V1EmptyDirVolumeSource", "sizeLimit"),
        ("V1ResourceFieldSelector", "divisor"),
        ("V1PodSpec", "overhead"),
    }
)

#: Extra constraints on Kubernetes fields. They bound the CEL cost estimate of taskflow's
#: rules that read these fields; each is no stricter than what the API server enforces on
#: pods anyway (volume names are DNS labels; paths are bounded by PATH_MAX).
K8S_OVERRIDES: Final[dict[tuple[str, str], Schema]] = {
    ("V1Volume", "name"): {"maxLength": 63},
    ("V1VolumeMount", "mountPath"): {"maxLength": 4096},
    ("V1VolumeMount", "name"): {"maxLength": 63},
}

#: Kubernetes types with a hand-written schema.
_SPECIAL: Final[dict[str, Schema]] = {
    # Embedded object metadata (PVC templates of ephemeral volumes): only labels and
    # annotations matter there; keep the rest as is rather than pruning it.
    "V1ObjectMeta": {
        "type": "object",
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "x-kubernetes-preserve-unknown-fields": True,
    },
}

#: Deeper Kubernetes types than this are cut off (preserve-unknown-fields).
MAX_K8S_DEPTH: Final = 16

INT_OR_STRING: Final[Schema] = {"x-kubernetes-int-or-string": True}
QUANTITY: Final[Schema] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "pattern": QUANTITY_PATTERN,
    "x-kubernetes-int-or-string": True,
}
PRESERVE: Final[Schema] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

_CONSTRAINT_KEYS: Final = (
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "pattern",
)


class SchemaError(ValueError):
    """A type cannot be expressed as a structural schema."""


# ---------------------------------------------------------------------------------------------
# Kubernetes models (kubernetes-asyncio metadata)


def k8s_model(name: str) -> Any:
    """The kubernetes-asyncio model class called ``name`` (e.g. ``"V1EnvVar"``)."""
    cls = getattr(k8s_models, name, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        raise SchemaError(f"unknown Kubernetes model {name!r}")
    return cls


@functools.cache
def _attr_by_wire(model: str) -> dict[str, str]:
    cls = k8s_model(model)
    return {wire: attr for attr, wire in cls.attribute_map.items()}


@functools.cache
def k8s_description(model: str, wire_name: str) -> str | None:
    """The API documentation of field ``wire_name`` of ``model`` (from its docstring)."""
    attr = _attr_by_wire(model).get(wire_name)
    if attr is None:
        return None
    doc = getattr(k8s_model(model), attr).__doc__ or ""
    lines = []
    for raw in doc.splitlines()[1:]:
        line = raw.replace("# noqa: E501", "").strip()
        if line.startswith(":return:") or line.startswith(":rtype:"):
            break
        lines.append(line)
    text = " ".join(x for x in lines if x).strip()
    return text or None


@functools.cache
def k8s_required(model: str) -> tuple[str, ...]:
    """Wire names of the fields the model requires (its setter rejects ``None``)."""
    cls = k8s_model(model)
    out = []
    for attr, wire in cls.attribute_map.items():
        prop = getattr(cls, attr)
        try:
            src = inspect.getsource(prop.fset)
        except (OSError, TypeError):  # pragma: no cover - source always ships with the wheel
            continue
        if re.search(rf"client_side_validation and {attr} is None", src):
            out.append(wire)
    return tuple(out)


_LIST_RE: Final = re.compile(r"^list\[(.*)\]$")
_DICT_RE: Final = re.compile(r"^dict\(([^,]+),\s*(.*)\)$")
_PRIMITIVES: Final[dict[str, Schema]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    # In core/v1, kubernetes-asyncio types IntOrString fields (ports) as ``object``.
    "object": INT_OR_STRING,
}


def k8s_schema(openapi_type: str, *, descriptions: bool = True, quantity: bool = False) -> Schema:
    """Structural schema of a kubernetes-asyncio type expression (``"list[V1EnvVar]"``)."""
    return _k8s(openapi_type.strip(), (), descriptions, quantity)


def _k8s(t: str, stack: tuple[str, ...], descriptions: bool, quantity: bool) -> Schema:
    if m := _LIST_RE.match(t):
        return {"type": "array", "items": _k8s(m[1].strip(), stack, descriptions, quantity)}
    if m := _DICT_RE.match(t):
        if m[1].strip() != "str":
            raise SchemaError(f"map keys must be strings: {t}")
        return {
            "type": "object",
            "additionalProperties": _k8s(m[2].strip(), stack, descriptions, quantity),
        }
    if quantity:
        if t not in ("str", "object"):
            raise SchemaError(f"quantity field of type {t}")
        return copy.deepcopy(QUANTITY)
    if t in _PRIMITIVES:
        return copy.deepcopy(_PRIMITIVES[t])
    if t in _SPECIAL:
        return copy.deepcopy(_SPECIAL[t])
    if t in stack or len(stack) >= MAX_K8S_DEPTH:
        return copy.deepcopy(PRESERVE)
    return copy.deepcopy(_k8s_object(t, stack, descriptions))


@functools.cache
def _k8s_object_cached(model: str, stack: tuple[str, ...], descriptions: bool) -> Schema:
    cls = k8s_model(model)
    props: Schema = {}
    for attr, sub in cls.openapi_types.items():
        wire = cls.attribute_map[attr]
        s = _k8s(sub, (*stack, model), descriptions, (model, wire) in QUANTITY_FIELDS)
        s.update(K8S_OVERRIDES.get((model, wire), {}))
        if descriptions and (d := k8s_description(model, wire)):
            s["description"] = d
        props[wire] = s
    out: Schema = {"type": "object", "properties": props}
    if req := k8s_required(model):
        out["required"] = list(req)
    return out


def _k8s_object(model: str, stack: tuple[str, ...], descriptions: bool) -> Schema:
    # The result only depends on which models are on the stack, not their order, for the
    # (non-recursive) core/v1 types; caching per stack keeps the recursion guard exact.
    return _k8s_object_cached(model, stack, descriptions)


# ---------------------------------------------------------------------------------------------
# msgspec types


def struct_schema(tp: Any, *, k8s_descriptions: bool = True) -> Schema:
    """Structural OpenAPI v3 schema of a msgspec type (usually a Struct class)."""
    return _convert(mi.type_info(tp), k8s_descriptions)


def _convert(t: mi.Type, k8s_descriptions: bool) -> Schema:
    if isinstance(t, mi.Metadata):
        return _annotated(t, k8s_descriptions)
    if isinstance(t, mi.StructType):
        return _struct(t, k8s_descriptions)
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) != 1:
            raise SchemaError(f"unions are not structural: {t}")
        return _convert(members[0], k8s_descriptions)
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        out = {"type": "array", "items": _convert(t.item_type, k8s_descriptions)}
        _bounds(out, t, "Items")
        return out
    if isinstance(t, mi.DictType):
        if not isinstance(t.key_type, mi.StrType):
            raise SchemaError("map keys must be strings")
        out = {"type": "object", "additionalProperties": _convert(t.value_type, k8s_descriptions)}
        _bounds(out, t, "Properties")
        return out
    return _scalar(t)


def _annotated(t: mi.Metadata, k8s_descriptions: bool) -> Schema:
    """``Annotated[T, Meta(...)]``: T's schema (a Kubernetes type's, for ``K8sType``) with
    the constraints and ``extra_json_schema`` the annotation adds."""
    inner = _convert(t.type, k8s_descriptions)
    extra = t.extra or {}
    if "k8s" in extra:
        out = k8s_schema(str(extra["k8s"]), descriptions=k8s_descriptions)
        if out.get("type") != inner.get("type"):
            raise SchemaError(f"K8sType({extra['k8s']!r}) does not fit {inner}")
        out.update({k: v for k, v in inner.items() if k in _CONSTRAINT_KEYS})
    else:
        out = inner
    for key, value in (t.extra_json_schema or {}).items():
        if key == "x-kubernetes-validations":
            out.setdefault(key, []).extend(copy.deepcopy(value))
        else:
            out[key] = copy.deepcopy(value)
    return out


#: Leaf types whose schema has no constraint of its own.
_PLAIN: Final[tuple[tuple[type[mi.Type], Schema], ...]] = (
    (mi.FloatType, {"type": "number"}),
    (mi.BoolType, {"type": "boolean"}),
    (mi.DateTimeType, {"type": "string", "format": "date-time"}),
    (mi.AnyType, {"x-kubernetes-preserve-unknown-fields": True}),
)


def _scalar(t: mi.Type) -> Schema:
    if isinstance(t, mi.StrType):
        out: Schema = {"type": "string"}
        _bounds(out, t, "Length")
        if t.pattern is not None:
            out["pattern"] = t.pattern
        return out
    if isinstance(t, mi.IntType):
        return _integer(t)
    if isinstance(t, mi.LiteralType):
        kinds = {type(v) for v in t.values}
        if kinds == {str}:
            return {"type": "string", "enum": list(t.values)}
        if kinds == {int}:
            return {"type": "integer", "enum": list(t.values)}
        raise SchemaError(f"mixed literal {t}")
    for kind, schema in _PLAIN:
        if isinstance(t, kind):
            return dict(schema)
    raise SchemaError(f"no structural schema for {t!r}")


def _integer(t: mi.IntType) -> Schema:
    out: Schema = {"type": "integer"}
    if t.ge is not None:
        out["minimum"] = t.ge
    if t.le is not None:
        out["maximum"] = t.le
    if t.gt is not None:
        out["minimum"] = t.gt + 1
    if t.lt is not None:
        out["maximum"] = t.lt - 1
    return out


def _bounds(out: Schema, t: Any, suffix: str) -> None:
    if t.min_length is not None:
        out["min" + suffix] = t.min_length
    if t.max_length is not None:
        out["max" + suffix] = t.max_length


def _struct(t: mi.StructType, k8s_descriptions: bool) -> Schema:
    model = getattr(t.cls, "k8s_model", None)
    props: Schema = {}
    required = []
    for f in t.fields:
        s = _convert(f.type, k8s_descriptions)
        if "description" not in s and model and (d := k8s_description(model, f.encode_name)):
            s["description"] = d
        props[f.encode_name] = s
        if f.required:
            required.append(f.encode_name)
    out: Schema = {"type": "object"}
    if t.cls.__doc__ and not t.cls.__doc__.startswith(t.cls.__name__ + "("):
        out["description"] = inspect.cleandoc(t.cls.__doc__)
    out["properties"] = props
    if required:
        out["required"] = required
    return out


# ---------------------------------------------------------------------------------------------
# structural check (used by the tests; mirrors the API server's rules that matter here)


def structural_errors(schema: Schema, path: str = "") -> list[str]:
    """Reasons why ``schema`` is not structural (empty when it is)."""
    errs = _node_errors(schema, path or "/") + _value_validation_errors(schema, path)
    for name, sub in schema.get("properties", {}).items():
        errs += structural_errors(sub, f"{path}/{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        errs += structural_errors(schema["additionalProperties"], f"{path}/*")
    if isinstance(schema.get("items"), dict):
        errs += structural_errors(schema["items"], f"{path}[]")
    return errs


def _node_errors(schema: Schema, where: str) -> list[str]:
    """What is wrong with this node itself, its children aside."""
    errs: list[str] = []
    if "$ref" in schema:
        errs.append(f"{where}: $ref")
    for key in ("additionalItems", "patternProperties", "dependencies", "definitions", "id"):
        if key in schema:
            errs.append(f"{where}: forbidden keyword {key}")
    intstr = schema.get("x-kubernetes-int-or-string") is True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in schema and not intstr and not preserve:
        errs.append(f"{where}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        errs.append(f"{where}: both properties and additionalProperties")
    if schema.get("type") == "array" and "items" not in schema:
        errs.append(f"{where}: array without items")
    return errs


def _value_validation_errors(schema: Schema, path: str) -> list[str]:
    """``anyOf``/``allOf``/``oneOf`` may only validate values, not shape them."""
    errs: list[str] = []
    intstr = schema.get("x-kubernetes-int-or-string") is True
    for key in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            for bad in ("description", "default", "nullable", "additionalProperties"):
                if bad in sub:
                    errs.append(f"{path}/{key}[{i}]: {bad} inside a value validation")
            if "type" in sub and not intstr:
                errs.append(f"{path}/{key}[{i}]: type inside a value validation")
    return errs


def walk(schema: Schema, path: str = "") -> list[tuple[str, Schema]]:
    """Every (path, node) of a schema, depth first (properties, ``*`` maps, ``[]`` items)."""
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += walk(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        out += walk(schema["additionalProperties"], f"{path}.*")
    if isinstance(schema.get("items"), dict):
        out += walk(schema["items"], f"{path}[]")
    return out


def encode(schema: Schema) -> bytes:
    """Canonical JSON of a schema (sorted keys) - for size checks and comparisons."""
    return msgspec.json.encode(schema, order="sorted")
