"""Node-level collectives and rails, judged into findings.

* A **single-node** run per node (all its GPUs: NVLink, P2P, SHM) and an **IB-only** run
  (``NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1``: NHC's ``check_nccl_allreduce_ib_loopback``), each against its own
  thresholds (``node_collectives.min_busbw`` / ``ib_only_min_busbw``). A failure is the node's own finding, so it
  lands in the exclude list.
* A **rail** run: every node, one rank per node on one rail (``rails[i].env``/``mca``; ``NCCL_TESTS_SPLIT`` when
  set), against ``rails.min_busbw``. A slow rail is then searched pair by pair on that rail only, which names the
  node and the rail (:func:`clusterproof.network.localize_findings.localization_findings` with ``rail=``).
"""

from __future__ import annotations

from collections.abc import Callable

from clusterproof.findings import Criterion, Evidence, Finding, Subject, failed, not_tested, passed
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.localize_model import FailureKind
from clusterproof.network.localize_runs import fatal_errors, wrong_count
from clusterproof.units import human_size


def _broken(res: CollectiveResult) -> tuple[FailureKind, str] | None:
    """How a run failed, with its reason, or None when it finished cleanly."""
    if res.timed_out:
        return FailureKind.HUNG, "did not finish within its timeout; its processes were ended"
    run = res.run
    if run is None:
        return FailureKind.CRASHED, f"exit code {res.rc}, no nccl-tests output ({res.parse_error})"
    if wrong_count(run):
        return FailureKind.WRONG, f"#wrong = {wrong_count(run)} (corrupted results)"
    fatal = fatal_errors(run)
    if res.rc != 0 or fatal or not run.complete or not len(run.results):
        return FailureKind.CRASHED, f"exit code {res.rc}: {fatal[0] if fatal else 'the log ends before the footer'}"
    return None


def judge_run(res: CollectiveResult, criterion: Criterion, subject: Subject, what: str,
              lookup: Callable[[int], float | None]) -> list[Finding]:
    """A finished run's rows against ``lookup(size)`` (GB/s): one FAIL per row below, else one PASS; a broken run
    is one FAIL naming how it broke; no threshold at any size is NOT_TESTED."""
    evidence = [Evidence(f"logs/{res.log_path.name}")]
    broken = _broken(res)
    if broken is not None:
        kind, why = broken
        return [failed(criterion, subject, f"{what}: {kind}: {why}", evidence=evidence, values={"kind": str(kind)})]
    assert res.run is not None
    rows, below, judged = res.run.results, [], 0
    worst: tuple[float, float, int] | None = None
    for size, placement, bw in zip(rows["size_bytes"], rows["placement"], rows["busbw_gbs"], strict=True):
        limit = lookup(int(size))
        if limit is None:
            continue
        judged += 1
        if float(bw) < limit:
            below.append(f"{human_size(int(size))} {placement}: busbw {float(bw):.3f} GB/s < threshold {limit:.3f} GB/s")
            if worst is None or float(bw) / limit < worst[0] / worst[1]:
                worst = (float(bw), limit, int(size))
    if not judged:
        return [not_tested(criterion, subject, f"{what}: no threshold applies to any measured size")]
    if below:
        values = {"busbw_gbs": worst[0], "threshold_gbs": worst[1], "size_bytes": worst[2]} if worst else {}
        return [failed(criterion, subject, f"{what}: {below[0]}" + (f" (+{len(below) - 1} more rows)" if len(below) > 1 else ""),
                       evidence=[Evidence(evidence[0].path, tuple(below))], values=values)]
    return [passed(criterion, subject, f"{what}: {judged} row(s) at or above threshold", evidence=evidence)]
