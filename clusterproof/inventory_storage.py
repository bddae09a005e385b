"""The inventory's storage performance and resilience settings (``storage.performance``, ``storage.disruption_*``).

Kept apart from ``inventory`` so that module stays small; ``inventory._read_storage`` calls ``read_performance``.
Sizes are written like ``4K``, ``16M``, ``1G`` (powers of two) or as integers (bytes).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterproof.fields import FieldReader, as_int, as_number, as_size
from clusterproof.units import parse_size

KIB, MIB = 1 << 10, 1 << 20
PERFORMANCE_KEYS = {"sizes", "node_sizes", "concurrency", "objects", "part_size", "list_keys", "max_inflight_bytes",
                    "deadline_s", "thresholds"}
THRESHOLD_KEYS = {"min_put_gbs", "min_get_gbs", "max_p99_ms"}


@dataclass(frozen=True)
class DataPathThreshold:
    """Limits for one size step: minimum aggregate throughput (GB/s, 1e9 bytes/s) and maximum p99 latency (ms).
    None means not gated."""

    min_put_gbs: float | None = None
    min_get_gbs: float | None = None
    max_p99_ms: float | None = None


@dataclass(frozen=True)
class PerformanceSettings:
    """``storage.performance``: what the data-path tests move and what they must reach.

    ``thresholds`` maps a size to limits that hold for it and every larger size up to the next key (sizes below
    the smallest key are not gated), like the network thresholds.
    """

    sizes: tuple[int, ...] = (4 * KIB, 1 * MIB, 16 * MIB, 64 * MIB, 256 * MIB)
    node_sizes: tuple[int, ...] = ()  # the from-every-node run; empty: the same as ``sizes``
    concurrency: tuple[int, ...] = (1, 4, 16)
    objects: int = 4  # objects per client thread and (size, concurrency) step
    part_size: int = 16 * MIB  # objects larger than this go up as multipart uploads of this part size
    list_keys: int = 1000
    max_inflight_bytes: int = 0  # size x concurrency x clients above this is not run (0: no cap)
    deadline_s: float = 900.0
    thresholds: Mapping[int, DataPathThreshold] = field(default_factory=dict)

    def threshold(self, size: int) -> DataPathThreshold | None:
        keys = [k for k in sorted(self.thresholds) if k <= size]
        return self.thresholds[keys[-1]] if keys else None

    def sizes_for_nodes(self) -> tuple[int, ...]:
        return self.node_sizes or self.sizes


def _positive_ints(r: FieldReader, raw: Any, path: str, size: bool) -> tuple[int, ...] | None:
    if not isinstance(raw, list) or not raw:
        r.problem(path, "expected a non-empty list")
        return None
    out: list[int] = []
    for i, v in enumerate(raw):
        try:
            n = as_size(v, path) if size else as_int(1)(v, path)
        except ValueError as e:
            r.problem(f"{path}[{i}]", str(e))
            continue
        if n < 1:
            r.problem(f"{path}[{i}]", f"expected a value >= 1, got {v!r}")
            continue
        out.append(int(n))
    return tuple(out)


def read_performance(r: FieldReader, raw: Any, p: str = "storage.performance") -> PerformanceSettings:
    if raw is None:
        return PerformanceSettings()
    m = r.mapping(raw, p, PERFORMANCE_KEYS)
    d = PerformanceSettings()
    sizes = _positive_ints(r, m["sizes"], f"{p}.sizes", True) if "sizes" in m else d.sizes
    node_sizes = _positive_ints(r, m["node_sizes"], f"{p}.node_sizes", True) if "node_sizes" in m else d.node_sizes
    conc = _positive_ints(r, m["concurrency"], f"{p}.concurrency", False) if "concurrency" in m else d.concurrency
    thresholds: dict[int, DataPathThreshold] = {}
    raw_t = m.get("thresholds") or {}
    if not isinstance(raw_t, dict):
        r.problem(f"{p}.thresholds", "expected a mapping of object size to limits")
        raw_t = {}
    for key, limits in raw_t.items():
        tp = f"{p}.thresholds.{key}"
        try:
            nbytes = parse_size(key)
        except ValueError as e:
            r.problem(tp, str(e))
            continue
        lm = r.mapping(limits, tp, THRESHOLD_KEYS)
        thresholds[nbytes] = DataPathThreshold(**{k: r.get(lm, k, tp, as_number(0), None) for k in THRESHOLD_KEYS})
    return PerformanceSettings(
        sizes=sizes or d.sizes, node_sizes=node_sizes or (), concurrency=conc or d.concurrency,
        objects=r.get(m, "objects", p, as_int(1), d.objects),
        part_size=r.get(m, "part_size", p, as_size, d.part_size),
        list_keys=r.get(m, "list_keys", p, as_int(0), d.list_keys),
        max_inflight_bytes=r.get(m, "max_inflight_bytes", p, as_size, d.max_inflight_bytes),
        deadline_s=r.get(m, "deadline_s", p, as_number(1), d.deadline_s),
        thresholds=thresholds,
    )


def read_command(r: FieldReader, raw: Any, path: str) -> tuple[str, ...]:
    """A command as an argv list, or a string split like a shell would (no shell runs it)."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            argv = shlex.split(raw)
        except ValueError as e:
            r.problem(path, f"cannot split the command: {e}")
            return ()
    elif isinstance(raw, list) and all(isinstance(a, str) for a in raw):
        argv = list(raw)
    else:
        r.problem(path, f"expected a command (a string or a list of strings), got {raw!r}")
        return ()
    if not argv:
        r.problem(path, "the command is empty")
    return tuple(argv)
