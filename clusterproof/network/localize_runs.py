"""From collective runs to the search and back: how an all-node run failed (its :class:`FailureKind`), the test
the search runs for that kind, and one group run's :class:`Measurement`.

Pure: these read a :class:`CollectiveResult` and settings; nothing here launches anything.

The test follows the failure: a slow run is searched at the sweep's largest size against the 2-node threshold;
a hang with the inventory's short ``localize.hang_timeout_s`` (a hung pair costs that, not ``timeout_s``); a crash
with the same short timeout; wrong results with validation on (``-c 1`` at least). :func:`seconds_at_limit` is how
long a slow search's run takes at exactly its limit, the bound behind cutting a pair that cannot reach it
(:class:`clusterproof.network.peer_cut.SlowCut`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from clusterproof.errors import ClusterproofError
from clusterproof.inventory import SweepSpec
from clusterproof.network.collective import CollectiveResult
from clusterproof.network.localize_model import FailureKind, Measurement
from clusterproof.network.nccl import NcclRun
from clusterproof.network.nccl_model import busbw_factor
from clusterproof.thresholds import Thresholds
from clusterproof.units import human_size

# NCCL WARN lines are judged by the transport tests; an unfinished log is judged by `complete`.
_NOT_FATAL = ("NCCL WARN", "log ends before")
_TAIL_LINES = 4
_FAILURE_WORDS = re.compile(r"failure|error|abort", re.IGNORECASE)


@dataclass(frozen=True)
class SearchTest:
    """What every group of a search runs: one size, the kind's timeout and validation, extra env and MCA."""

    kind: FailureKind
    sweep: SweepSpec
    size_bytes: int
    timeout_s: float
    env: Mapping[str, str] = field(default_factory=dict)
    mca: Mapping[str, str] = field(default_factory=dict)


def seconds_at_limit(test: SearchTest, collective: str, n_ranks: int, limit_gbs: float) -> float:
    """How long the collectives of one search run take at exactly ``limit_gbs`` of bus bandwidth: an upper bound,
    counting two warm-up phases (nccl-tests warms up at the largest and the smallest size, here the same), and per
    placement (out-of-place, in-place) the timed iterations and the validation runs. A collective at busbw B on
    S bytes takes ``S * factor(n) / B`` (nccl-tests: busbw = algbw * factor, algbw = S / time)."""
    sweep = test.sweep
    collectives = 2 * sweep.warmup_iters + 2 * (sweep.iters + sweep.check)
    return collectives * test.size_bytes * busbw_factor(collective, n_ranks) / (limit_gbs * 1e9)


def fatal_errors(run: NcclRun) -> list[str]:
    return [e for e in run.errors if not any(m in e for m in _NOT_FATAL)]


def wrong_count(run: NcclRun) -> int:
    wrong = run.results["wrong"].dropna() if len(run.results) else pd.Series(dtype="Int64")
    return int(wrong.sum()) if len(wrong) else 0


def below_threshold(run: NcclRun, thresholds: Thresholds, collective: str, n_nodes: int) -> list[str]:
    """One line per row under its threshold (after the inventory's tolerance)."""
    out = []
    factor = 1.0 - thresholds.tolerance_pct / 100.0
    for size, placement, bw in zip(run.results["size_bytes"], run.results["placement"], run.results["busbw_gbs"], strict=True):
        limit = thresholds.lookup(collective, n_nodes, int(size))
        if limit is not None and float(bw) < limit * factor:
            out.append(f"{human_size(int(size))} {placement}: busbw {float(bw):.3f} GB/s < {limit * factor:.3f}")
    return out


def failure_kind(res: CollectiveResult, thresholds: Thresholds, collective: str) -> FailureKind | None:
    """How an all-node run failed (None: it did not). Order: hung, wrong, crashed, slow (a run with wrong
    results exits non-zero too, and that is not a crash)."""
    if res.timed_out:
        return FailureKind.HUNG
    run = res.run
    if run is not None and wrong_count(run) > 0:
        return FailureKind.WRONG
    if res.rc != 0 or run is None or not run.complete or fatal_errors(run) or not len(run.results):
        return FailureKind.CRASHED
    if below_threshold(run, thresholds, collective, len(res.nodes)):
        return FailureKind.SLOW
    return None


def search_test(kind: FailureKind, sweep: SweepSpec, *, timeout_s: float, hang_timeout_s: float,
                env: Mapping[str, str] | None = None, mca: Mapping[str, str] | None = None) -> SearchTest:
    """The test every group of a ``kind`` search runs (see the module docstring)."""
    size = sweep.sizes()[-1]
    one = replace(sweep, min_bytes=size, max_bytes=size)
    if kind is FailureKind.WRONG:
        one = replace(one, check=max(1, sweep.check))
    timeout = min(timeout_s, hang_timeout_s) if kind in (FailureKind.HUNG, FailureKind.CRASHED) else timeout_s
    return SearchTest(kind, one, size, timeout, dict(env or {}), dict(mca or {}))


def _tail(text: str) -> tuple[str, ...]:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("# clusterproof job")]
    return tuple(lines[-_TAIL_LINES:])


def measurement(nodes: Sequence[str], outcome: CollectiveResult | ClusterproofError, test: SearchTest) -> Measurement:
    """One group run as the search sees it. A run that did not start, hung, crashed or returned wrong results
    carries its error and no number."""
    names = tuple(nodes)
    if isinstance(outcome, ClusterproofError):
        return Measurement(names, error=str(outcome).splitlines()[0], ran=False)
    res = outcome
    log = f"logs/{res.log_path.name}"
    base = {"seconds": res.seconds, "log": log}
    if res.timed_out:  # its timeout, or a peer cut that took it for hung or slow
        why = res.cut or f"timed out after {test.timeout_s:g} s"
        return Measurement(names, failure=res.cut_as or FailureKind.HUNG, error=f"{why}; its processes were ended on every node",
                           lines=_tail(res.log_text), **base)  # type: ignore[arg-type]
    run = res.run
    if run is None:
        said = next((ln.strip() for ln in res.log_text.splitlines() if _FAILURE_WORDS.search(ln) and not ln.startswith("#")), None)
        why = said or (res.parse_error or "").split(": ", 1)[-1][:160]
        return Measurement(names, failure=FailureKind.CRASHED, error=f"exit code {res.rc}, no nccl-tests output: {why}",
                           lines=_tail(res.log_text), **base)  # type: ignore[arg-type]
    wrong = wrong_count(run)
    if wrong:
        return Measurement(names, failure=FailureKind.WRONG, error=f"#wrong = {wrong} (corrupted results, exit code {res.rc})",
                           lines=_tail(res.log_text), **base)  # type: ignore[arg-type]
    fatal = fatal_errors(run)
    if res.rc != 0 or fatal or not run.complete or not len(run.results):
        if fatal:
            why = fatal[0]
        elif not run.complete:
            why = "the log ends before the nccl-tests footer"
        elif not len(run.results):
            why = "no result row"
        else:  # a launcher that failed after a whole, clean nccl-tests output (was called "no result row")
            why = "the launcher failed after complete output"
        return Measurement(names, failure=FailureKind.CRASHED, error=f"exit code {res.rc}: {why}", lines=_tail(res.log_text), **base)  # type: ignore[arg-type]
    rows = run.results[run.results["size_bytes"] == run.results["size_bytes"].max()]  # the searched size
    return Measurement(names, busbw_gbs=float(rows["busbw_gbs"].min()), **base)  # type: ignore[arg-type]
