"""Lenient reads of FHIR JSON: a field of the wrong type reads as absent, never as a crash.

Real clients send slightly-off resources (an object where R4 has a list, a number where it has a
string). Every module that reads chart or draft JSON goes through these four functions, so a
malformed field costs that field only, not the whole check.
"""

import math
from collections.abc import Mapping
from typing import Any

# Parsed JSON is made of plain dicts, lists, strings, numbers and None: ``type(x) is dict`` answers
# first, an absent field (None) next, and the abstract ``isinstance(x, Mapping)`` check (ten times
# slower, even for None) runs only for other values. The test is written out where it is used: a
# helper function would cost as much as the test itself on these paths.

def _get(resource: Any, key: str) -> Any:
    if type(resource) is dict or (resource is not None and isinstance(resource, Mapping)):
        return resource.get(key)
    return None


def child(resource: Any, key: str) -> Mapping[str, Any]:
    """The object at ``key``, or an empty mapping."""
    value = _get(resource, key)
    return value if type(value) is dict or (value is not None and isinstance(value, Mapping)) else {}


def items(resource: Any, key: str) -> list[Mapping[str, Any]]:
    """The objects in the list at ``key`` (non-objects skipped), or an empty list."""
    value = _get(resource, key)
    if type(value) is not list:
        return []
    return [item for item in value if type(item) is dict or isinstance(item, Mapping)]


def text(resource: Any, key: str) -> str | None:
    """The non-empty string at ``key``, or None."""
    value = _get(resource, key)
    return value if type(value) is str and value.strip() else None


def number(resource: Any, key: str) -> float | None:
    """The finite number at ``key`` (booleans are not numbers), or None."""
    value = _get(resource, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        value = float(value)        # an int too large for a double raises OverflowError
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def show_value(value: float) -> str:
    """A measured value as a card may show it, even an implausible one: never a negative, infinite or NaN number."""
    if not isinstance(value, (int, float)) or value != value:
        return "a value that is not a number"
    if value in (float("inf"), float("-inf")):
        return "a number too large to use"
    if value < 0:
        return "a negative value"
    return f"{value:.4g}"
