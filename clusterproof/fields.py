"""Validation primitives for YAML documents: read fields, convert them, and collect every problem with its
path (``nodes[3].host: missing``) instead of stopping at the first. Used by the inventory loader.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from clusterproof.units import parse_size

T = TypeVar("T")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FieldReader:
    """Walks a YAML mapping, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, msg: str) -> None:
        self.problems.append(f"{path or '(top level)'}: {msg}")

    def mapping(self, value: Any, path: str, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                hint = closest(str(key), allowed)
                self.problem(f"{path}.{key}" if path else str(key), "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
        for key in sorted(required):
            if key not in value or value[key] is None:
                self.problem(f"{path}.{key}" if path else key, "missing")
        return value

    def get(self, m: dict[str, Any], key: str, path: str, conv: Callable[[Any, str], Any], default: T) -> T:
        if key not in m or m[key] is None:
            return default
        full = f"{path}.{key}" if path else key
        try:
            converted: T = conv(m[key], full)
            return converted
        except ValueError as e:
            self.problem(full, str(e))
            return default


def closest(key: str, allowed: set[str]) -> str | None:
    hits = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return hits[0] if hits else None


def as_text(v: Any, _p: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"expected a non-empty string, got {v!r}")
    return v


def as_name(v: Any, p: str) -> str:
    s = as_text(v, p)
    if not NAME_RE.match(s):
        raise ValueError(f"{s!r} is not a valid name (letters, digits, '_', '-', '.')")
    return s


def as_env_name(v: Any, p: str) -> str:
    s = as_text(v, p)
    if not ENV_NAME_RE.match(s):
        raise ValueError(f"{s!r} is not an environment variable name (this field names a variable; never put the secret here)")
    return s


def as_int(lo: int | None = None, hi: int | None = None) -> Callable[[Any, str], int]:
    def conv(v: Any, _p: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}, got {v}")
        if hi is not None and v > hi:
            raise ValueError(f"must be <= {hi}, got {v}")
        return v

    return conv


def as_number(lo: float | None = None) -> Callable[[Any, str], float]:
    def conv(v: Any, _p: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"expected a number, got {v!r}")
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}, got {v}")
        return float(v)

    return conv


def as_bool(v: Any, _p: str) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def as_size(v: Any, _p: str) -> int:
    return parse_size(v)


def as_path(v: Any, p: str) -> Path:
    return Path(os.path.expanduser(as_text(v, p)))


def as_str_list(v: Any, _p: str) -> tuple[str, ...]:
    if isinstance(v, str) or not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"expected a list of strings, got {v!r}")
    return tuple(v)


def one_of(*options: str) -> Callable[[Any, str], str]:
    def conv(v: Any, _p: str) -> str:
        if v is True and "on" in options:  # YAML reads a bare `on` as true
            return "on"
        if v is False and "off" in options:
            return "off"
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {v!r}")
        return str(v)

    return conv


def as_str_map(v: Any, _p: str) -> dict[str, str]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping, got {type(v).__name__}")
    out = {}
    for k, val in v.items():
        if not isinstance(k, str) or isinstance(val, dict | list) or val is None:
            raise ValueError(f"entry {k!r}: expected NAME: value, got {val!r}")
        out[k] = "1" if val is True else "0" if val is False else str(val)
    return out
