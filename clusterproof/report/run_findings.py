"""The findings only a whole run can give, computed when the run ends (and again by ``clusterproof report build``):
the baseline comparison (:attr:`Criterion.BASELINE`) and the scan of the report directory for secrets
(:attr:`Criterion.NO_SECRETS`). They are recorded into the run's findings log beside the suites' own, each in a file
of its own that a rebuild replaces, and judged with them by :func:`clusterproof.findings.judge`."""

from __future__ import annotations

from pathlib import Path

from clusterproof import findings as fd
from clusterproof.findings import RUN, Criterion, Finding, FindingLog, Subject
from clusterproof.report.baseline import BaselineDiff
from clusterproof.report.scrub import ScanResult

BASELINE_LOG = "run-baseline"
SECRETS_LOG = "run-secrets"


def baseline_findings(diff: BaselineDiff | None) -> list[Finding]:
    """A failure per busbw regression beyond the tolerance (naming collective, node set, size and both values), a
    pass when rows were compared and none regressed, not tested without a baseline or a matching row."""
    if diff is None:
        return [fd.not_tested(Criterion.BASELINE, RUN, "no baseline given (--baseline)")]
    if diff.regressions:
        return [fd.failed(Criterion.BASELINE, Subject("node_set", r.node_set), r.message,
                          values={"busbw_gbs": r.current_gbs, "baseline_gbs": r.baseline_gbs, "change_pct": r.change_pct,
                                  "tolerance_pct": diff.tolerance_pct})
                for r in diff.regressions]
    if diff.compared == 0:
        return [fd.not_tested(Criterion.BASELINE, RUN, "no row matched the baseline")]
    return [fd.passed(Criterion.BASELINE, RUN, diff.summary(), values={"compared": diff.compared})]


def secret_findings(scan: ScanResult, minted: int) -> list[Finding]:
    """A failure per place in the report that still holds a secret (never the value), else one pass saying what was
    scanned and against how many minted secrets."""
    if scan.leaks:
        return [fd.failed(Criterion.NO_SECRETS, Subject("file", leak.path), str(leak)) for leak in scan.leaks]
    kib = scan.bytes / 1024
    return [fd.passed(Criterion.NO_SECRETS, RUN,
                      f"scanned {scan.files} files ({kib:,.0f} KiB) under the report: no secret this run minted "
                      f"({minted} fingerprinted), no registered secret, secret-looking assignment or environment dump",
                      values={"files": scan.files, "bytes": scan.bytes, "minted": minted})]


def record_baseline(run_dir: Path, diff: BaselineDiff | None) -> None:
    FindingLog(run_dir, BASELINE_LOG).replace(baseline_findings(diff))


def record_secrets(run_dir: Path, scan: ScanResult, minted: int) -> None:
    FindingLog(run_dir, SECRETS_LOG).replace(secret_findings(scan, minted))
