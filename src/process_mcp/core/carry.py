"""Handing values on by name: one object built from another's attributes of the same names.

Where a tool's input, a reply or a settings group holds the values of another object's
fields under the same names, ``Target(**carried(source, names))`` says so once, instead
of a line per field; a field renamed on one side only fails loudly (AttributeError, or
TypeError for an unknown keyword), never silently. Standard library only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import Any


def carried(source: object, names: Iterable[str]) -> dict[str, Any]:
    """``{name: source.name}`` for each of ``names``, in their order (AttributeError when
    ``source`` lacks one)."""
    return {name: getattr(source, name) for name in names}


@functools.cache
def init_names(cls: type, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names of dataclass ``cls``'s ``__init__`` fields, in field order, less ``skip``
    (those the caller passes itself)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in skip)
