"""The JSON schemas of the tool models (:mod:`.schemas`), shaped for every client.

Inputs (:func:`input_schema`) are portable and small: every property has a ``type``; an
optional parameter is simply not ``required`` (no ``anyOf`` with ``null``, no
``default: null``); no ``$ref``, no ``exclusiveMinimum``, no titles. Outputs
(:func:`output_schema`) are inlined and compact, and truthful about slim answers.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s input schema, portable (see the module docstring) and without the
    validation details a model need not read (titles, string lengths, patterns): the
    server still enforces them, with errors that name the field."""
    schema = model.model_json_schema(by_alias=True)
    properties = {name: _portable(prop) for name, prop in schema.get("properties", {}).items()}
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        out["required"] = schema["required"]
    out["additionalProperties"] = False
    return out


_PLAIN_DEFAULTS: list[Any] = [None, False, [], "", "null"]
_DROPPED = {
    "title",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


def _portable(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:
        branches = [branch for branch in prop["anyOf"] if branch.get("type") != "null"]
        assert len(branches) == 1, f"cannot make {prop} portable"
        prop = {**branches[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    out = {key: value for key, value in prop.items() if key not in _DROPPED}
    if "default" in out and out["default"] in _PLAIN_DEFAULTS:
        del out["default"]  # null, false, [], "" and "null" go without saying
    if "items" in out:
        out["items"] = _portable(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _portable(out["additionalProperties"])
    return out


NULLABLE_WHEN_ENDED = ("exitCode", "signal")  # null in an answer once ended, not otherwise


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s serialization schema, inlined and compact: no titles, descriptions,
    defaults or enums (the tool description says what matters), and ``null`` allowed only
    where an answer can carry it (a required nullable field, or ``exitCode``/``signal``:
    any other field at ``null`` is left out). ``required`` lists exactly the fields every
    answer carries."""
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    out = _compact(schema, schema.get("$defs", {}))
    for name, field in model.model_fields.items():
        alias = field.alias or name
        prop = out["properties"][alias]
        nullable_type = isinstance(prop.get("type"), list)
        if nullable_type and not field.is_required() and alias not in NULLABLE_WHEN_ENDED:
            prop["type"] = next(t for t in prop["type"] if t != "null")
        item = get_args(field.annotation)[0] if get_origin(field.annotation) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):
            out["properties"][alias] = {"type": "array", "items": output_schema(item)}
    return out


def _compact(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _compact(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in node:
        branches = [_compact(branch, defs) for branch in node["anyOf"]]
        if all(set(branch) == {"type"} for branch in branches):
            return {"type": [branch["type"] for branch in branches]}
        other = [branch for branch in branches if branch != {"type": "null"}]
        if len(other) == 1:
            merged = dict(other[0])
            merged["type"] = [merged["type"], "null"]
            return merged
        return {"anyOf": branches}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "description", "default", "enum", "$defs"):
            continue
        if key == "properties":
            value = {name: _compact(prop, defs) for name, prop in value.items()}
        elif key == "items":
            value = _compact(value, defs)
        out[key] = value
    return out
