"""Per-node outliers: in the sub-set, pair and single-node runs, a node whose results are more than k median
absolute deviations below the cluster's median is named, even when every row is above the fixed threshold.

Each node gets one score per (collective, node count, size, placement): the best busbw of the rows whose node
set contains it (a healthy node paired once with a slow one still has a good pair; a slow node has none),
divided by that group's median over the nodes. A node's ratio is the median of its scores over the groups (one
noisy row cannot make an outlier); a node is an outlier when its ratio is more than ``k`` MADs of the other
nodes' ratios *and* at least ``min_drop_pct`` percent below their median. Rows on every node (the all-node run) say nothing about one
node and are left out. Pure: rows in, findings out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd

from clusterproof.findings import Criterion, Finding, Subject, failed, node_subject, not_tested, passed
from clusterproof.network.reference import mad, measured_busbw, median
from clusterproof.units import human_size


@dataclass(frozen=True)
class NodeScore:
    group: str  # "all_reduce 2 nodes 1M out-of-place"
    node: str
    score_gbs: float
    median_gbs: float
    mad_gbs: float
    low: bool


@dataclass
class OutlierReport:
    """Every node's scores per group, and per node the median of its score / group median (its ``ratio``)."""

    scores: list[NodeScore] = field(default_factory=list)
    groups: int = 0
    k: float = 3.0
    min_drop_pct: float = 10.0

    def of(self, node: str) -> list[NodeScore]:
        return [s for s in self.scores if s.node == node]

    @property
    def nodes(self) -> list[str]:
        return sorted({s.node for s in self.scores})

    def ratio(self, node: str) -> float:
        return median([s.score_gbs / s.median_gbs for s in self.of(node)])

    def cluster_band(self, without: str | None = None) -> tuple[float, float]:
        """The median and MAD of the nodes' ratios (``without`` one node: the band it is judged against)."""
        ratios = [self.ratio(n) for n in self.nodes if n != without]
        return median(ratios), mad(ratios)

    @property
    def outliers(self) -> list[str]:
        """Nodes whose ratio is more than k MADs and at least ``min_drop_pct`` percent below the other nodes'
        median (leave-one-out: a slow node must not widen the band it is judged against)."""
        if len(self.nodes) < 3:
            return []
        out = []
        for n in self.nodes:
            m, d = self.cluster_band(without=n)
            if self.ratio(n) < m - self.k * d and self.ratio(n) < m * (1.0 - self.min_drop_pct / 100.0):
                out.append(n)
        return out


def score_nodes(rows: pd.DataFrame, all_nodes: list[str] | None = None, *, k: float = 3.0,
                min_drop_pct: float = 10.0) -> OutlierReport:
    """Score every node in every group of partial runs (see the module docstring)."""
    keep = rows.dropna(subset=["node_set", "size_bytes", "busbw_gbs", "n_nodes"])
    if "wrong" in keep.columns:
        keep = keep[keep["wrong"].fillna(0).astype("int64") == 0]
    keep = keep.assign(busbw_gbs=measured_busbw(keep))
    everyone = set(all_nodes) if all_nodes else set()
    for ns in keep["node_set"]:
        everyone |= set(str(ns).split(","))
    report = OutlierReport(k=k, min_drop_pct=min_drop_pct)
    for key, g in keep.groupby(["collective", "n_nodes", "size_bytes", "placement"], sort=True):
        coll, n, size, placement = cast(tuple[Any, Any, Any, Any], key)
        best: dict[str, float] = defaultdict(float)
        for ns, bw in zip(g["node_set"], g["busbw_gbs"], strict=True):
            members = str(ns).split(",")
            if set(members) >= everyone:
                continue  # the all-node run
            for node in members:
                best[node] = max(best[node], float(bw))
        if len(best) < 3:
            continue  # two nodes cannot out-vote each other
        values = list(best.values())
        m, d = median(values), mad(values)
        if m <= 0:
            continue
        label = f"{coll} {int(n)} node{'s' if int(n) != 1 else ''} {human_size(int(size))} {placement}"
        report.groups += 1
        for node, score in sorted(best.items()):
            low = score < m - k * d and score < m * (1.0 - min_drop_pct / 100.0)
            report.scores.append(NodeScore(label, node, score, m, d, low))
    return report


def check_outliers(rows: pd.DataFrame, all_nodes: list[str] | None = None, *, k: float = 3.0,
                   min_drop_pct: float = 10.0) -> list[Finding]:
    """A failing BAD_NODE finding per outlier node (by name), a pass per other node scored; not tested when the
    table has no group of partial runs with at least three nodes."""
    rep = score_nodes(rows, all_nodes, k=k, min_drop_pct=min_drop_pct)
    if not rep.scores:
        return [not_tested(Criterion.BAD_NODE, Subject("run", "run"),
                           "no sub-set, pair or single-node results over three or more nodes: no per-node comparison")]
    out: list[Finding] = []
    outliers = set(rep.outliers)
    for node in rep.nodes:
        m, d = rep.cluster_band(without=node)
        mine = rep.of(node)
        ratio = rep.ratio(node) * 100.0
        low = [s for s in mine if s.low]
        values = {"pct_of_cluster_median": round(ratio, 1), "cluster_median_pct": round(m * 100.0, 1),
                  "mad_pct": round(d * 100.0, 2), "low_groups": len(low), "groups": len(mine), "k_mad": k,
                  "min_drop_pct": min_drop_pct}
        if node in outliers:
            worst = min(mine, key=lambda s: s.score_gbs / s.median_gbs)
            out.append(failed(
                Criterion.BAD_NODE, node_subject(node),
                f"{node} is an outlier: {ratio:.0f}% of the cluster median busbw (the other nodes' median {m * 100:.0f}%, "
                f"MAD {d * 100:.1f} points, limit {k:g} MADs and {min_drop_pct:g}%) over {len(mine)} partial-run results "
                f"(worst {worst.group}: best {worst.score_gbs:.4g} GB/s vs median {worst.median_gbs:.4g})",
                values=values))
        else:
            out.append(passed(Criterion.BAD_NODE, node_subject(node),
                              f"{node}: {ratio:.0f}% of the cluster median busbw over {len(mine)} partial-run results",
                              values=values))
    return out
