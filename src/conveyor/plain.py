"""Plain data: what a task's arguments, return value and progress may be.

JSON carries str, int, float, bool, None, lists and dicts with string keys, and brings
them back as they were. msgspec would also encode a datetime, a UUID, a Decimal, an Enum,
a set or a dataclass, and `{1: "a"}` or `nan`, but they come back as something else
(a string, a list, `{"1": "a"}`, None): a task would see other values than were sent.
So Conveyor refuses them with a SerializationError naming the value, at `delay()` for
arguments and in the worker for results, rather than convert them silently
(docs/tasks.md, "What a task can take and return").
"""

from __future__ import annotations

import enum
import math
from typing import Any

import msgspec

MAX_DEPTH = 200  # lists and dicts nested deeper than this are refused, not recursed into

Found = tuple[list[str], str]  # (where, innermost first; what is wrong there)


def problem(value: Any) -> str | None:
    """Why `value` would not come back from JSON as it is (naming where in it), or None."""
    found = _walk(value, 0)
    if found is None:
        return None
    path, what = found
    return f"{''.join(reversed(path)) or 'the value'} {what}"


def _walk(value: Any, depth: int) -> Found | None:  # noqa: C901 - one branch per JSON type
    kind = type(value)
    if kind is int or kind is bool or value is None:
        return None
    if kind is str:
        return None if value.isascii() else _string(value)
    if kind is float:
        return None if math.isfinite(value) else ([], f"is {value!r}, which JSON has no "
                                                      "number for")
    if kind is list or kind is tuple or kind is dict:
        if depth >= MAX_DEPTH:
            return [], f"is nested more than {MAX_DEPTH} levels deep"
        items = value.items() if kind is dict else enumerate(value)
        for key, item in items:
            if kind is dict and type(key) is not str:
                return [], (f"has the key {key!r} of type {type(key).__name__}: JSON keys "
                            "are strings")
            found = _walk(item, depth + 1)
            if found is not None:
                found[0].append(f"[{key!r}]")
                return found
        return None
    if kind is msgspec.Raw:  # a workflow step's value, already JSON
        return None
    if isinstance(value, enum.Enum):  # an IntEnum or StrEnum would come back plain
        return [], f"is the enum member {value!r}: pass its .value"
    if isinstance(value, dict):  # an OrderedDict, a defaultdict: it comes back a dict
        return _walk(dict(value), depth)
    if isinstance(value, list | tuple):  # a subclass: it comes back a list
        return _walk(list(value), depth)
    for base in (str, int, float):
        if isinstance(value, base):
            return [], (f"is a {kind.__name__}, a {base.__name__} subclass: pass "
                        f"{base.__name__}(value)")
    return [], f"is a {kind.__name__}"


def _string(value: str) -> Found | None:
    try:
        value.encode()
    except UnicodeEncodeError:
        return [], (f"is a string with a lone surrogate ({value!r}), which UTF-8 can't "
                    "carry: decode file names with os.fsdecode() or errors='replace'")
    return None
