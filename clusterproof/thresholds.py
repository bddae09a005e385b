"""The threshold table (minimum busbw by collective, node count and size), shared by the inventory's
``thresholds:`` section and the reference files ``clusterproof calibrate`` writes (their ``thresholds:``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterproof.fields import FieldReader, as_number
from clusterproof.units import parse_size

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv", "broadcast", "reduce")


@dataclass(frozen=True)
class Thresholds:
    """Minimum busbw (GB/s) by collective -> node-count key (int or ``"*"``) -> size (bytes).

    A size key applies to that size and every larger one up to the next key; sizes below the smallest key are
    not gated. An exact node-count key wins over ``"*"``.
    """

    table: Mapping[str, Mapping[int | str, Mapping[int, float]]] = field(default_factory=dict)
    tolerance_pct: float = 0.0

    def lookup(self, collective: str, n_nodes: int, size_bytes: int) -> float | None:
        """The threshold for one row, or None when the inventory sets none for it."""
        per_count = self.table.get(collective)
        if not per_count:
            return None
        steps = per_count.get(n_nodes, per_count.get("*"))
        if not steps:
            return None
        keys = [k for k in sorted(steps) if k <= size_bytes]
        return steps[keys[-1]] if keys else None


def read_thresholds(r: FieldReader, raw: Any, p: str = "thresholds") -> Thresholds:
    """Validate a threshold table (the ``thresholds`` section, or the same format under ``p`` elsewhere)."""
    if raw is None:
        return Thresholds()
    if not isinstance(raw, dict):
        r.problem(p, f"expected a mapping, got {type(raw).__name__}")
        return Thresholds()
    tolerance = r.get(raw, "tolerance_pct", p, as_number(0.0), 0.0)
    if tolerance >= 100:
        r.problem(f"{p}.tolerance_pct", f"must be below 100, got {tolerance}")
    table: dict[str, dict[int | str, dict[int, float]]] = {}
    for coll, per_count in raw.items():
        if coll == "tolerance_pct":
            continue
        cp = f"{p}.{coll}"
        if coll not in COLLECTIVES:
            r.problem(cp, f"unknown collective (known: {', '.join(COLLECTIVES)})")
            continue
        if not isinstance(per_count, dict):
            r.problem(cp, "expected a mapping of node count ('*' or an integer) to sizes")
            continue
        table[coll] = {}
        for count, steps in per_count.items():
            np_ = f"{cp}.{count}"
            if count != "*" and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                r.problem(np_, "node-count key must be '*' or an integer >= 1")
                continue
            if not isinstance(steps, dict) or not steps:
                r.problem(np_, "expected a mapping of message size to minimum busbw in GB/s")
                continue
            table[coll][count] = {}
            for size, value in steps.items():
                sp = f"{np_}.{size}"
                try:
                    nbytes = parse_size(size)
                except ValueError as e:
                    r.problem(sp, str(e))
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    r.problem(sp, f"expected a bus bandwidth in GB/s (a number >= 0), got {value!r}")
                    continue
                table[coll][count][nbytes] = float(value)
    return Thresholds(table=table, tolerance_pct=tolerance)
