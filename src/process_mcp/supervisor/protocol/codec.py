"""Typed objects ↔ JSON values: the one encoder and decoder behind every supervisor message.

A message body is a frozen dataclass; its wire form is a JSON object whose keys are the
field names (snake_case, the supervisor wire's one spelling) and whose values are encoded
by type. :func:`decode_object` is strict, so a bad message is refused where it enters:

- an unknown key, a missing required key, or a value of the wrong type is a
  :class:`BadField` (code ``bad_request``) naming the message, the field, the value and
  what is accepted (``'args' must be a list of strings, got 'abc'``);
- every number must be finite (``NaN``, ``Infinity`` and overflowing literals such as
  ``1e999`` are refused), and within the field's :func:`bounded` range if it has one;
- ``bool`` is never taken for an ``int`` (JSON ``true`` is not ``1``).

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``Any`` (a JSON value taken
as is), ``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``
and nested dataclasses. Standard library only: the person's CLI decodes with it and
imports no event loop.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

from process_mcp.core.options import RANGE
from process_mcp.supervisor.protocol.framing import ProtocolError

T = TypeVar("T")


class BadField(ProtocolError):
    """A message body that does not fit its type; ``code`` is ``bad_request``."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_request", message)


def bounded(default: Any, lowest: float | None = None, highest: float | None = None) -> Any:
    """A dataclass field with a default and an accepted range, checked at decode."""
    return dataclasses.field(default=default, metadata={RANGE: (lowest, highest)})


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any, Any, bool], ...]:
    """``(name, type, range, required)`` of each init field, types resolved once."""
    hints = typing.get_type_hints(cls)
    out = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        required = field.default is dataclasses.MISSING and (
            field.default_factory is dataclasses.MISSING
        )
        out.append((field.name, hints[field.name], field.metadata.get(RANGE), required))
    return tuple(out)


def field_names(cls: type) -> list[str]:
    return [name for name, *_ in _fields(cls)]


def _nested(kind: Any) -> bool:
    return dataclasses.is_dataclass(kind) or any(_nested(arg) for arg in get_args(kind))


@functools.cache
def _plan(cls: type) -> tuple[Any, ...]:
    """How to encode, decode and build ``cls``, worked out once per class: field names,
    which fields hold dataclasses, each field's checker, the defaults, and whether the
    class may be built without its ``__init__`` (no ``__post_init__`` to run)."""
    specs = _fields(cls)
    nested = tuple(name for name, kind, _, _ in specs if _nested(kind))
    checkers = tuple(
        (name, _checker(kind, limits), required) for name, kind, limits, required in specs
    )
    defaults, factories = {}, []
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            factories.append((field.name, field.default_factory))
    plain = not hasattr(cls, "__post_init__") and all(f.init for f in dataclasses.fields(cls))
    known = frozenset(name for name, *_ in specs)
    return nested, checkers, defaults, tuple(factories), plain, known


def build(cls: type[T], values: dict[str, Any]) -> T:
    """``cls(**values)`` for values already known to fit (made by the core, or checked):
    a class without ``__post_init__`` is filled directly, which is several times faster
    than a frozen dataclass's ``__init__`` (that matters for thousands of records)."""
    _, _, defaults, factories, plain, known = _plan(cls)
    if not plain:
        return cls(**values)
    if not known.issuperset(values):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(values) - known)[0]!r}")
    obj = object.__new__(cls)
    state = obj.__dict__
    state.update(values)  # in field order when all are given (what the encoder sends)
    if len(state) < len(known):
        for name, default in defaults.items():
            state.setdefault(name, default)
        for name, factory in factories:
            if name not in state:
                state[name] = factory()
        if len(state) < len(known):
            raise TypeError(f"{cls.__name__} needs {sorted(known.difference(state))[0]!r}")
    return obj


_SCALARS = (str, int, float, bool, type(None))
_NESTED: dict[type, tuple[str, ...]] = {}  # a dataclass -> its fields that hold dataclasses


def encode_value(value: Any) -> Any:
    """A JSON value for ``value`` (dataclasses become objects keyed by field name; a
    tuple stays a tuple, which JSON writes as an array)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    nested = _NESTED.get(kind)
    if nested is None and hasattr(kind, "__dataclass_fields__"):
        nested = _NESTED[kind] = _plan(kind)[0]
    if nested is not None:
        body = dict(vars(value))
        for name in nested:  # only the fields that hold dataclasses
            body[name] = encode_value(body[name])
        return body
    if isinstance(value, list | tuple):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        return {key: encode_value(item) for key, item in value.items()}
    return value


def decode_object(cls: type[T], data: Any, where: str, path: str = "") -> T:
    """``cls`` built from the JSON object ``data``; raises :class:`BadField` naming
    ``where`` (the message, e.g. ``"start"``) and the field at fault (``path``: where
    this object sits in the message, e.g. ``"options."``)."""
    if type(data) is not dict:
        what = f"{where}: {path[:-1]!r}" if path else where
        raise BadField(f"{what}: expected an object, got {_show(data)}")
    _, checkers, _, _, _, known = _plan(cls)
    if not known.issuperset(data):
        unknown = next(key for key in data if key not in known)
        raise BadField(
            f"{where}: unknown field {path + unknown!r}; the fields are {', '.join(sorted(known))}"
        )
    values = {}
    for name, check, required in checkers:
        if name in data:
            values[name] = check(data[name], where, path + name)
        elif required:
            raise BadField(f"{where}: missing field {path + name!r}")
    try:
        return build(cls, values)
    except (TypeError, ValueError) as exc:  # a __post_init__ check
        raise BadField(f"{where}: {exc}") from None


def decode_trusted(cls: type[T], data: Any, where: str) -> T:
    """``cls`` from what this version's own encoder made (a reply or an event from the
    supervisor the handshake matched): the shape is checked — an unknown or missing
    field still fails — and nested documents are built, but values are not checked one
    by one again (a ``list`` of thousands of records would pay for it on every call)."""
    return _trusted(cls)(data, where)  # type: ignore[no-any-return]


@functools.cache
def _trusted(cls: type) -> Any:
    """The compiled ``(data, where) -> cls`` of :func:`decode_trusted`."""
    known = _plan(cls)[5]
    converters = tuple(
        (name, _converter(kind)) for name, kind, _, _ in _fields(cls) if _nested(kind)
    )
    listing = ", ".join(sorted(known))

    def decode(data: Any, where: str) -> Any:
        if type(data) is not dict:
            raise BadField(f"{where}: expected an object, got {_show(data)}")
        if not known.issuperset(data):
            unknown = next(key for key in data if key not in known)
            raise BadField(f"{where}: unknown field {unknown!r}; the fields are {listing}")
        if converters:
            data = dict(data)
            for name, convert in converters:
                if name in data:
                    data[name] = convert(data[name], where)
        try:
            return build(cls, data)
        except (TypeError, ValueError) as exc:
            raise BadField(f"{where}: {exc}") from None

    return decode


def _converter(kind: Any) -> Any:
    """``(value, where) -> value`` building the dataclasses inside a trusted value."""
    origin = get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _trusted(kind)  # type: ignore[arg-type]
    if origin in (types.UnionType, typing.Union):
        inner = _converter(next(arg for arg in get_args(kind) if arg is not type(None)))
        return lambda value, where: None if value is None else inner(value, where)
    if origin in (list, tuple, Sequence):
        item = _converter(get_args(kind)[0])
        return lambda value, where: [item(element, where) for element in value]
    if origin in (dict, Mapping):
        item = _converter(get_args(kind)[1])
        return lambda value, where: {key: item(element, where) for key, element in value.items()}
    return lambda value, where: value


Checker = Any  # (value, where, path) -> value, raising BadField


@functools.cache
def _checker(kind: Any, limits: Any = None) -> Checker:
    """The function that checks (and converts) a JSON value of type ``kind``."""
    if kind is Any:
        return lambda value, where, path: value
    origin = get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = [arg for arg in get_args(kind) if arg is not type(None)]
        inner = _checker(options[0], limits)
        nullable = len(options) < len(get_args(kind))

        def optional(value: Any, where: str, path: str) -> Any:
            if value is None:
                if nullable:
                    return None
                raise BadField(f"{where}: {path!r} must not be null")
            return inner(value, where, path)

        return optional
    if origin is Literal:
        accepted = get_args(kind)

        def literal(value: Any, where: str, path: str) -> Any:
            if value in accepted and type(value) is type(accepted[0]):
                return value
            said = " or ".join(repr(arg) for arg in accepted)
            raise BadField(f"{where}: {path!r} must be {said}, got {_show(value)}")

        return literal
    if origin in (list, tuple, Sequence):
        return _sequence_checker(get_args(kind)[0], origin is list)
    if origin in (dict, Mapping):
        return _mapping_checker(get_args(kind)[1])
    if dataclasses.is_dataclass(kind):
        return lambda value, where, path: decode_object(kind, value, where, path + ".")
    if kind in (bool, str):

        def exact(value: Any, where: str, path: str) -> Any:
            if type(value) is kind:
                return value
            return _scalar(kind, value, f"{where}: {path!r}", limits)

        return exact
    return lambda value, where, path: _scalar(kind, value, f"{where}: {path!r}", limits)


def _sequence_checker(item: Any, as_list: bool) -> Checker:
    check = _checker(item)
    simple = item in (str, int, bool)

    def sequence(value: Any, where: str, path: str) -> Any:
        if type(value) is not list:
            raise BadField(
                f"{where}: {path!r} must be a list of {_plural(item)}, got {_show(value)}"
            )
        if simple and all(type(element) is item for element in value):
            items = value
        else:
            items = [check(element, where, f"{path}[{i}]") for i, element in enumerate(value)]
        return items if as_list else tuple(items)

    return sequence


def _mapping_checker(item: Any) -> Checker:
    check = _checker(item)

    def mapping(value: Any, where: str, path: str) -> Any:
        if type(value) is not dict:
            raise BadField(
                f"{where}: {path!r} must be an object of {_plural(item)}, got {_show(value)}"
            )
        if item is str and all(type(element) is str for element in value.values()):
            return value
        return {key: check(element, where, f"{path}[{key!r}]") for key, element in value.items()}

    return mapping


def _scalar(kind: Any, value: Any, what: str, limits: Any) -> Any:
    if kind not in (bool, str, int, float):
        raise TypeError(f"the protocol cannot decode fields of type {kind!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if (kind is bool and isinstance(value, bool)) or (kind is str and isinstance(value, str)):
        return value
    if kind is int and number and not isinstance(value, int):
        raise BadField(f"{what} must be a whole number{_range(limits)}, got {_show(value)}")
    if kind not in (int, float) or not number:
        raise BadField(f"{what} must be {_name(kind)}{_range(limits)}, got {_show(value)}")
    if not math.isfinite(value):
        raise BadField(f"{what} must be a finite number{_range(limits)}, got {_show(value)}")
    if limits is not None:
        lowest, highest = limits
        if (lowest is not None and value < lowest) or (highest is not None and value > highest):
            raise BadField(f"{what} must be a number{_range(limits)}, got {_show(value)}")
    return float(value) if kind is float else value


def _range(limits: Any) -> str:
    if limits is None:
        return ""
    lowest, highest = limits
    if highest is None:
        return f" of at least {lowest:g}"
    if lowest is None:
        return f" of at most {highest:g}"
    return f" from {lowest:g} to {highest:g}"


def _name(kind: Any) -> str:
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}
    if kind in names:
        return names[kind]
    if get_origin(kind) in (types.UnionType, typing.Union):
        return " or ".join(_name(arg) for arg in get_args(kind) if arg is not type(None))
    return getattr(kind, "__name__", str(kind))


def _plural(kind: Any) -> str:
    plurals = {str: "strings", int: "whole numbers", float: "numbers", bool: "booleans"}
    return plurals.get(kind, _name(kind))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@functools.cache
def snake(name: str) -> str:
    """``exitCode`` → ``exit_code``."""
    return _CAMEL.sub("_", name).lower()


@functools.cache
def camel(name: str) -> str:
    """``exit_code`` → ``exitCode``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
