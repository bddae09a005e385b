"""Byte sizes as people write them (``512M``, ``8G``) and back."""

from __future__ import annotations

import re

_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Return a byte count from an int or a string like ``8``, ``512M``, ``8G``, ``1GiB`` (binary units,
    as nccl-tests reads ``-b``/``-e``).

    Raises:
        ValueError: the value is not a non-negative size.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (expected e.g. 8, 512K, 64M, 8G)")
    return int(m.group(1)) * _SUFFIX[m.group(2).upper()]


def human_size(n: int) -> str:
    """``8589934592`` -> ``8G``, ``1536`` -> ``1536``; exact binary multiples only, so ids round-trip."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SUFFIX[suffix]
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)
