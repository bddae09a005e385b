"""Judge a parsed nccl-tests run: sanity first (ReFrame), then performance against the inventory's thresholds.

Both checks are pure and return :class:`~clusterproof.findings.Finding` records: one failing finding per violated
expectation, one line each, so a failing test shows all of them at once
(``all_reduce 4 nodes 8G out-of-place: busbw 351.20 GB/s < threshold 360.00 GB/s``), and a passing finding for
what was judged fine, so the scorecard says what was tested.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Evidence, Finding, Subject
from clusterproof.thresholds import Thresholds
from clusterproof.units import human_size


def _label(collective: str, n_nodes: int, size: int | None = None, placement: str | None = None) -> str:
    parts = [collective, f"{n_nodes} nodes"]
    if size is not None:
        parts.append(human_size(size))
    if placement:
        parts.append(placement)
    return " ".join(parts)


def run_subject(collective: str, n_nodes: int, node_set: str | None = None) -> Subject:
    """The subject of a collective run: its node set (``node01,node02``), or ``all_reduce-4nodes`` without one."""
    if node_set:
        return Subject("pair" if n_nodes == 2 else "node_set", node_set)
    return Subject("node_set", f"{collective}-{n_nodes}nodes")


def sanity(
    results: pd.DataFrame,
    *,
    collective: str,
    n_nodes: int,
    expected_sizes: Sequence[int],
    expected_ranks: int,
    nranks: int,
    complete: bool,
    rc: int | None,
    errors: Sequence[str] = (),
    require_validation: bool = True,
    node_set: str | None = None,
    log_path: str | None = None,
) -> list[Finding]:
    """Sanity of one run: exit code 0, a complete log, every rank reported, every requested size present in both
    placements (:attr:`Criterion.COLLECTIVES`), and ``#wrong == 0`` on every validated row
    (:attr:`Criterion.DATA_INTEGRITY`; a run with no validated row at all fails it when validation was requested,
    and is not tested otherwise). Returns one failing finding per problem, and a passing one per criterion
    without a problem.
    """
    subject = run_subject(collective, n_nodes, node_set)
    evidence = (Evidence(log_path),) if log_path else ()
    run_problems: list[str] = []
    integrity: list[Finding] = []
    tag = _label(collective, n_nodes)

    if rc is None:
        run_problems.append(f"{tag}: the run did not finish (timed out or was killed)")
    elif rc != 0:
        run_problems.append(f"{tag}: the launcher exited with code {rc}")
    if not complete:
        run_problems.append(f"{tag}: the log ends before the nccl-tests footer (the run died mid-way)")
    if nranks != expected_ranks:
        run_problems.append(f"{tag}: {nranks} ranks reported, expected {expected_ranks}")
    run_problems += [f"{tag}: {err}" for err in errors]
    have = set(zip(results["size_bytes"].tolist(), results["placement"].tolist(), strict=True)) if len(results) else set()
    for size in expected_sizes:
        for placement in ("out-of-place", "in-place"):
            if (size, placement) not in have:
                run_problems.append(f"{tag} {human_size(size)} {placement}: row missing from the output")
    out = [fd.failed(Criterion.COLLECTIVES, subject, m, evidence=evidence) for m in run_problems]
    if not run_problems:
        out.append(fd.passed(Criterion.COLLECTIVES, subject, f"{tag}: rc 0, {nranks} ranks, every size in both placements",
                             evidence=evidence, values={"nranks": nranks, "rows": len(results)}))
    # A placement nccl-tests does not validate for a collective prints N/A: that is not a failure. A run in which
    # no row at all was validated proves nothing about data integrity, so that is one (when validation was asked).
    validated = int(results["wrong"].notna().sum()) if len(results) else 0
    for size_v, placement_v, wrong in zip(results["size_bytes"], results["placement"], results["wrong"], strict=True):
        if pd.notna(wrong) and int(wrong) != 0:
            size, placement = int(size_v), str(placement_v)
            integrity.append(fd.failed(
                Criterion.DATA_INTEGRITY, subject,
                f"{_label(collective, n_nodes, size, placement)}: #wrong = {int(wrong)} (corrupted results)",
                evidence=evidence, values={"size_bytes": size, "wrong": int(wrong)}))
    if integrity:
        return out + integrity
    if len(results) and validated == 0:
        why = f"{tag}: #wrong is N/A on every row (validation off, -c 0?); data integrity unproven"
        if require_validation:
            return [*out, fd.failed(Criterion.DATA_INTEGRITY, subject, why, evidence=evidence)]
        return [*out, fd.not_tested(Criterion.DATA_INTEGRITY, subject, why, evidence=evidence)]
    if validated:
        out.append(fd.passed(Criterion.DATA_INTEGRITY, subject, f"{tag}: 0 wrong elements in {validated} validated rows",
                             evidence=evidence, values={"validated_rows": validated}))
    return out


def thresholds_for(results: pd.DataFrame, thresholds: Thresholds, collective: str, n_nodes: int) -> pd.Series:
    """The threshold (GB/s, NaN where none applies) for each row of ``results``."""
    values = [thresholds.lookup(collective, n_nodes, int(s)) for s in results["size_bytes"]]
    return pd.Series([float("nan") if x is None else x for x in values], index=results.index, dtype="float64")


def performance(results: pd.DataFrame, thresholds: Thresholds, *, collective: str, n_nodes: int,
                node_set: str | None = None, log_path: str | None = None) -> list[Finding]:
    """Bus bandwidth of every row at or above its threshold (after the inventory's tolerance): one finding per row
    that has a threshold (:attr:`Criterion.COLLECTIVES`; a 4-node run also gives :attr:`Criterion.FOUR_NODE`,
    ClusterMAX's "4-node NCCL test"). ``values`` holds ``busbw_gbs``, ``threshold_gbs`` and ``floor_gbs``."""
    out: list[Finding] = []
    subject = run_subject(collective, n_nodes, node_set)
    evidence = (Evidence(log_path),) if log_path else ()
    limits = thresholds_for(results, thresholds, collective, n_nodes)
    factor = 1.0 - thresholds.tolerance_pct / 100.0
    criteria = [Criterion.COLLECTIVES] + ([Criterion.FOUR_NODE] if n_nodes == 4 else [])
    for (_, row), limit in zip(results.iterrows(), limits, strict=True):
        if pd.isna(limit):
            continue
        floor = limit * factor
        size, placement = int(row["size_bytes"]), str(row["placement"])
        busbw = float(row["busbw_gbs"])
        values = {"busbw_gbs": busbw, "threshold_gbs": float(limit), "floor_gbs": floor, "size_bytes": size}
        label = _label(collective, n_nodes, size, placement)
        for criterion in criteria:
            if busbw < floor:
                tol = f" -{thresholds.tolerance_pct:g}% ({floor:.2f})" if thresholds.tolerance_pct else ""
                out.append(fd.failed(criterion, subject, f"{label}: busbw {busbw:.2f} GB/s < threshold {limit:.2f} GB/s{tol}",
                                     evidence=evidence, values=values))
            else:
                out.append(fd.passed(criterion, subject, f"{label}: busbw {busbw:.2f} GB/s >= threshold {limit:.2f} GB/s",
                                     evidence=evidence, values=values))
    return out


def row_verdicts(results: pd.DataFrame, thresholds: Thresholds, *, collective: str, n_nodes: int) -> pd.DataFrame:
    """``results`` plus ``threshold_gbs`` and ``verdict`` (pass / fail / info when no threshold applies)."""
    out = results.copy()
    limits = thresholds_for(results, thresholds, collective, n_nodes)
    factor = 1.0 - thresholds.tolerance_pct / 100.0
    out["threshold_gbs"] = limits
    wrong_bad = out["wrong"].fillna(0).astype("int64") != 0 if len(out) else pd.Series(dtype=bool)
    below = out["busbw_gbs"] < limits * factor
    out["verdict"] = "info"
    out.loc[limits.notna(), "verdict"] = "pass"
    out.loc[limits.notna() & below, "verdict"] = "fail"
    out.loc[wrong_bad, "verdict"] = "fail"
    return out
