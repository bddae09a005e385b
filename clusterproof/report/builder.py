"""Build a run's report from its saved data: plots, ``index.html``, ``summary.md``, ``scorecard.json``.

Nothing is re-run and nothing is re-judged: the verdict is :func:`clusterproof.findings.judge` over the findings the
suites recorded under ``<run>/findings/``, plus the run-level findings (baseline, secret scan) recorded there first
(:mod:`clusterproof.report.run_findings`). ``clusterproof report build reports/<run-id>`` calls :func:`build` and so
gives the verdict the run gave.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import ClusterproofError
from clusterproof.findings import FINDINGS_DIR, RunVerdict, judge, read_findings
from clusterproof.report import html as html_page
from clusterproof.report import markdown as md_page
from clusterproof.report.baseline import BaselineDiff, compare, load_baseline
from clusterproof.report.pagedata import PageData
from clusterproof.report.plots import Plot, draw_all
from clusterproof.report.reference_section import draw_soak
from clusterproof.report.run_findings import BASELINE_LOG, record_baseline, record_secrets
from clusterproof.report.scrub import redact_page, scan_dir, scrub_obj
from clusterproof.report.tables import read_run_data
from clusterproof.secret_ledger import load_fingerprints

HTML_NAME = "index.html"
MD_NAME = "summary.md"
JSON_NAME = "scorecard.json"


@dataclass
class ReportSummary:
    """What ``build`` found and wrote: ``verdict`` is the run's one judgement."""

    verdict: RunVerdict
    baseline_diff: BaselineDiff | None
    html_path: Path
    md_path: Path
    plots: list[Path] = field(default_factory=list)
    standin: bool = False

    @property
    def word(self) -> str:
        """``pass`` or ``fail``."""
        return self.verdict.word

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def scorecard_json(page: PageData) -> dict[str, Any]:
    """The machine-readable scorecard: top-level ``verdict`` (``pass``/``fail``), one entry per criterion with its
    status, headline and failing findings."""
    v = page.verdict
    return {
        "run_id": page.data.meta.run_id,
        "cluster": page.data.meta.cluster,
        "verdict": v.word,
        "known_limitations": v.has_known_limitations,
        "standin": page.standin,
        "scorecard": [
            {"id": c.criterion.value, "area": c.criterion.area.value, "name": c.criterion.heading, "status": c.status.value,
             "evidence": c.headline, "findings": len(c.findings),
             "details": [f.line for f in c.failures]}
            for c in v.criteria
        ],
        "failures": [f.line for c in v.failing() for f in c.failures],
        "baseline": None if page.diff is None else {
            "summary": page.diff.summary(),
            "regressions": [r.message for r in page.diff.regressions],
            "new_failures": page.diff.new_failures,
            "fixed": page.diff.fixed,
        },
    }


def _write(outdir: Path, page: PageData) -> tuple[Path, Path]:
    html_path = outdir / HTML_NAME
    md_path = outdir / MD_NAME
    # Every piece of the pages was scrubbed when it was rendered; this last pass is the belt to those braces.
    html_path.write_text(redact_page(html_page.render(page)), encoding="utf-8")
    md_path.write_text(redact_page(md_page.render(page)), encoding="utf-8")
    (outdir / JSON_NAME).write_text(redact_page(json.dumps(scrub_obj(scorecard_json(page)), indent=1)) + "\n", encoding="utf-8")
    return html_path, md_path


def build(outdir: Path, baseline: Path | None = None, tolerance_pct: float = 5.0) -> ReportSummary:
    """Record the run-level findings, judge every finding of the run and write the pages.

    With ``baseline`` (a run directory or a results file) the comparison is (re)computed and its findings replace
    the recorded ones; without it, the run's recorded baseline findings stand (so a rebuild agrees with the run), or
    the criterion is not tested when the run had none. The secret scan is always redone, against the fingerprints of
    every secret the run minted.

    Raises:
        ClusterproofError: ``outdir`` is not a run directory or has no findings, or the baseline cannot be found.
        ParseError: a saved file is unreadable.
        FindingsFileError: a findings file is not one this version wrote.
        ValueError: ``tolerance_pct`` is negative.
    """
    outdir = Path(outdir)
    data = read_run_data(outdir)
    if not (outdir / FINDINGS_DIR).is_dir():
        # Judging nothing would read as a pass: a run written before findings existed cannot be rebuilt honestly.
        raise ClusterproofError(f"{outdir}: no {FINDINGS_DIR}/ directory, so nothing to judge (a run written by an "
                                "older clusterproof, or not by the suites)")
    diff = compare(data.network, load_baseline(Path(baseline)), tolerance_pct) if baseline is not None else None
    if diff is not None or not (outdir / FINDINGS_DIR / f"{BASELINE_LOG}.jsonl").exists():
        record_baseline(outdir, diff)
    plots = draw_all(data.network, outdir / "plots", data.standin, data.meta.cluster, list(data.meta.nodes))
    plots += draw_soak(outdir, outdir / "plots", data.standin)
    minted = load_fingerprints(outdir)
    # The pages cannot be scanned before they exist: write them from a scan of everything else, then scan the
    # whole directory, pages included, and write them again with that result (a leak in a page shows there).
    record_secrets(outdir, scan_dir(outdir, skip=[outdir / HTML_NAME, outdir / MD_NAME, outdir / JSON_NAME], minted=minted), len(minted))
    page = _page(outdir, data, diff, plots)
    _write(outdir, page)
    record_secrets(outdir, scan_dir(outdir, minted=minted), len(minted))
    page = _page(outdir, data, diff, plots)
    html_path, md_path = _write(outdir, page)
    return ReportSummary(page.verdict, diff, html_path, md_path, [p.path for p in plots], data.standin)


def _page(outdir: Path, data: Any, diff: BaselineDiff | None, plots: list[Plot]) -> PageData:
    return PageData(data=data, verdict=judge(read_findings(outdir)), diff=diff, plots=plots)
