"""Inventory sections of the bad-node search and the node-level tests: ``localize``, ``node_collectives`` and
``rails`` (frozen dataclasses, validated at load like every section; see ``examples/my-cluster.yaml``).

Kept apart from :mod:`clusterproof.inventory` so that module only calls :func:`read_localize`,
:func:`read_node_collectives` and :func:`read_rails`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from clusterproof.fields import (
    ENV_NAME_RE,
    FieldReader,
    as_bool,
    as_int,
    as_name,
    as_number,
    as_str_map,
    as_text,
    one_of,
)
from clusterproof.units import parse_size

#: What NHC's IB loopback check and ClusterMAX's "IB all-reduce" set to force the network path.
IB_ONLY_ENV: Mapping[str, str] = {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1"}


@dataclass(frozen=True)
class LocalizeSettings:
    """``localize``: how the bad-node search runs after an all-node failure."""

    hang_timeout_s: float = 60.0  # timeout of each group run when searching a hang or a crash
    max_concurrent: int | None = None  # runs per round (None: all disjoint groups at once)
    strategy: Literal["auto", "pairs", "bisect"] = "auto"
    relative_drop: float = 0.3  # slow search without a 2-node threshold: bad below (1 - drop) x median
    #: hang search: a run still going after this many times its slowest clean peer of the round (and at least
    #: ``hang_peer_floor_s``) is cut as hung instead of waiting for ``hang_timeout_s``; 0 turns it off
    hang_peer_factor: float = 3.0
    hang_peer_floor_s: float = 10.0
    #: slow search against a bus-bandwidth limit: once the other runs of a round are done, a run still going after
    #: the slowest of them plus the time its collectives take at the limit is cut as slow (it cannot reach the
    #: limit; see clusterproof.network.peer_cut.SlowCut), with no number; false waits for every run to end
    slow_peer_cut: bool = True


@dataclass(frozen=True)
class NodeCollectiveSettings:
    """``node_collectives``: one single-node run per node (all its GPUs), plus the IB-only variant."""

    collective: str = "all_reduce"
    min_busbw: Mapping[int, float] = field(default_factory=dict)  # size (bytes) -> GB/s, single node
    ib_only_min_busbw: Mapping[int, float] = field(default_factory=dict)  # the same with NCCL_P2P/SHM disabled
    ranks: int | None = None  # ranks on the node (None: its slots, one per GPU)

    def lookup(self, ib_only: bool, size: int) -> float | None:
        steps = self.ib_only_min_busbw if ib_only else self.min_busbw
        keys = [k for k in sorted(steps) if k <= size]
        return steps[keys[-1]] if keys else None


@dataclass(frozen=True)
class Rail:
    """One rail: what a run adds to use only that rail (``env``: e.g. ``NCCL_IB_HCA==mlx5_1:1``; ``mca``: e.g.
    ``btl_tcp_if_include: eth1`` for the sandbox's CPU stand-in)."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    mca: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RailSettings:
    """``rails``: each rail measured on its own across all nodes, against ``min_busbw``."""

    collective: str = "all_reduce"
    split: str | None = None  # NCCL_TESTS_SPLIT for every rail run, e.g. "MOD 8"
    rails: tuple[Rail, ...] = ()
    min_busbw: Mapping[int, float] = field(default_factory=dict)

    def lookup(self, size: int) -> float | None:
        keys = [k for k in sorted(self.min_busbw) if k <= size]
        return self.min_busbw[keys[-1]] if keys else None


def _steps(r: FieldReader, raw: Any, path: str) -> dict[int, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        r.problem(path, "expected a mapping of message size to minimum busbw in GB/s")
        return {}
    out: dict[int, float] = {}
    for size, value in raw.items():
        try:
            nbytes = parse_size(size)
        except ValueError as e:
            r.problem(f"{path}.{size}", str(e))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            r.problem(f"{path}.{size}", f"expected a bus bandwidth in GB/s (a number >= 0), got {value!r}")
            continue
        out[nbytes] = float(value)
    return out


def _env(r: FieldReader, m: dict[str, Any], path: str) -> dict[str, str]:
    env: dict[str, str] = r.get(m, "env", path, as_str_map, {})
    for k in env:
        if not ENV_NAME_RE.match(k):
            r.problem(f"{path}.env.{k}", "not an environment variable name")
    return env


def read_localize(r: FieldReader, raw: Any) -> LocalizeSettings:
    p = "localize"
    m = r.mapping(raw, p, {"hang_timeout_s", "max_concurrent", "strategy", "relative_drop", "hang_peer_factor",
                           "hang_peer_floor_s", "slow_peer_cut"})
    factor = r.get(m, "hang_peer_factor", p, as_number(0.0), 3.0)
    if 0 < factor < 1:
        r.problem(f"{p}.hang_peer_factor", f"must be 0 (off) or at least 1, got {factor}")
    drop = r.get(m, "relative_drop", p, as_number(0.0), 0.3)
    if drop >= 1:
        r.problem(f"{p}.relative_drop", f"must be below 1, got {drop}")
    return LocalizeSettings(
        hang_timeout_s=r.get(m, "hang_timeout_s", p, as_number(1.0), 60.0),
        max_concurrent=r.get(m, "max_concurrent", p, as_int(1), None),
        strategy=r.get(m, "strategy", p, one_of("auto", "pairs", "bisect"), "auto"),
        relative_drop=drop,
        hang_peer_factor=factor,
        hang_peer_floor_s=r.get(m, "hang_peer_floor_s", p, as_number(0.0), 10.0),
        slow_peer_cut=r.get(m, "slow_peer_cut", p, as_bool, True),
    )


def read_node_collectives(r: FieldReader, raw: Any, collectives: tuple[str, ...]) -> NodeCollectiveSettings | None:
    if raw is None:
        return None
    p = "node_collectives"
    m = r.mapping(raw, p, {"collective", "min_busbw", "ib_only_min_busbw", "ranks"})
    coll = r.get(m, "collective", p, as_text, "all_reduce")
    if coll not in collectives:
        r.problem(f"{p}.collective", f"unknown collective {coll!r} (known: {', '.join(collectives)})")
    return NodeCollectiveSettings(coll, _steps(r, m.get("min_busbw"), f"{p}.min_busbw"),
                                  _steps(r, m.get("ib_only_min_busbw"), f"{p}.ib_only_min_busbw"),
                                  r.get(m, "ranks", p, as_int(2), None))


def read_rails(r: FieldReader, raw: Any, collectives: tuple[str, ...]) -> RailSettings | None:
    if raw is None:
        return None
    p = "rails"
    m = r.mapping(raw, p, {"collective", "split", "rails", "min_busbw"}, {"rails"})
    coll = r.get(m, "collective", p, as_text, "all_reduce")
    if coll not in collectives:
        r.problem(f"{p}.collective", f"unknown collective {coll!r} (known: {', '.join(collectives)})")
    items = m.get("rails") or []
    if not isinstance(items, list) or not items:
        r.problem(f"{p}.rails", "expected a non-empty list of rails")
        items = []
    rails = []
    for i, item in enumerate(items):
        ip = f"{p}.rails[{i}]"
        rm = r.mapping(item, ip, {"name", "env", "mca"}, {"name"})
        rails.append(Rail(r.get(rm, "name", ip, as_name, f"rail{i}"), _env(r, rm, ip), r.get(rm, "mca", ip, as_str_map, {})))
    names = [x.name for x in rails]
    if len(set(names)) != len(names):
        r.problem(f"{p}.rails", f"rail names must be unique, got {names}")
    split = r.get(m, "split", p, as_text, None)
    if split is not None and (len(split.split()) != 2 or split.split()[0].upper() not in ("MOD", "DIV", "AND", "OR", "XOR")):
        r.problem(f"{p}.split", f"expected '<MOD|DIV|AND|OR|XOR> <number>' (NCCL_TESTS_SPLIT), got {split!r}")
    return RailSettings(coll, split, tuple(rails), _steps(r, m.get("min_busbw"), f"{p}.min_busbw"))
