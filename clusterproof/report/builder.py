"""Build a run's report from its saved data: plots, scorecard, ``index.html``, ``summary.md``,
``scorecard.json``. Nothing is re-run; ``clusterproof report build reports/<run-id>`` calls ``build``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clusterproof.report import html as html_page
from clusterproof.report import markdown as md_page
from clusterproof.report.baseline import BaselineDiff, compare, load_baseline
from clusterproof.report.datapath_plot import datapath_plots
from clusterproof.report.pagedata import PageData
from clusterproof.report.plots import Plot, draw_all
from clusterproof.report.scorecard import FAIL, PASS, Criterion, check_line, score
from clusterproof.report.scrub import ScanResult, redact_page, scan_dir, scrub_obj
from clusterproof.report.tables import RunData, read_run_data

HTML_NAME = "index.html"
MD_NAME = "summary.md"
JSON_NAME = "scorecard.json"


@dataclass
class ReportSummary:
    """What ``build`` decided and wrote."""

    verdict: str  # "pass" | "fail"
    scorecard: list[Criterion]
    failures: list[str]
    baseline_diff: BaselineDiff | None
    html_path: Path
    md_path: Path
    plots: list[Path] = field(default_factory=list)
    standin: bool = False


def _failures(cards: list[Criterion], data: RunData) -> list[str]:
    """Every failing case once: the failing criteria's details first, then failed tests they did not cite."""
    seen: set[str] = set()
    out: list[str] = []
    for c in cards:
        if c.status == FAIL:
            for line in c.details or [f"{c.name}: {c.evidence}"]:
                if line not in seen:
                    seen.add(line)
                    out.append(line)
    for check in data.checks:
        if check.get("outcome") in ("failed", "error"):
            line = check_line(check)
            if line not in seen:
                seen.add(line)
                out.append(line)
    return out


def _verdict(cards: list[Criterion], failures: list[str]) -> tuple[str, list[str]]:
    if failures:
        return "fail", failures
    # A report that proves nothing must not read as a pass: the secret scan alone is not a test of the cluster.
    if not any(c.status == PASS for c in cards if c.id != "security.no_secrets"):
        return "fail", ["nothing was tested: every criterion about the cluster is 'not tested'"]
    return "pass", failures


def _write(outdir: Path, page: PageData) -> tuple[Path, Path]:
    html_path = outdir / HTML_NAME
    md_path = outdir / MD_NAME
    # Every piece of the pages was scrubbed when it was rendered; this last pass is the belt to those braces.
    html_path.write_text(redact_page(html_page.render(page)), encoding="utf-8")
    md_path.write_text(redact_page(md_page.render(page)), encoding="utf-8")
    card = {
        "run_id": page.data.meta.run_id,
        "cluster": page.data.meta.cluster,
        "verdict": page.verdict,
        "standin": page.standin,
        "scorecard": [asdict(c) for c in page.scorecard],
        "failures": page.failures,
        "baseline": None if page.diff is None else {
            "summary": page.diff.summary(),
            "regressions": [r.message for r in page.diff.regressions],
            "new_failures": page.diff.new_failures,
            "fixed": page.diff.fixed,
        },
    }
    (outdir / JSON_NAME).write_text(redact_page(json.dumps(scrub_obj(card), indent=1)) + "\n", encoding="utf-8")
    return html_path, md_path


def _page(data: RunData, scan: ScanResult, diff: BaselineDiff | None, plots: list[Plot]) -> PageData:
    cards = score(data, scan, diff)
    verdict, failures = _verdict(cards, _failures(cards, data))
    return PageData(data=data, verdict=verdict, scorecard=cards, failures=failures, diff=diff, plots=plots)


def build(outdir: Path, baseline: Path | None = None, tolerance_pct: float = 5.0) -> ReportSummary:
    """Read the saved data in ``outdir`` and write ``plots/*.png``, ``index.html``, ``summary.md`` and
    ``scorecard.json`` there; compare with ``baseline`` (a run directory or a results file) when given.

    Returns:
        The verdict, the scorecard, every failing case, the baseline comparison and the paths written.
    Raises:
        ClusterproofError: ``outdir`` is not a run directory, or the baseline cannot be found.
        ParseError: a saved file is unreadable.
        ValueError: ``tolerance_pct`` is negative.
    """
    outdir = Path(outdir)
    data = read_run_data(outdir)
    diff = compare(data.network, load_baseline(Path(baseline)), tolerance_pct) if baseline is not None else None
    plots = draw_all(data.network, outdir / "plots", data.standin, data.meta.cluster, list(data.meta.nodes))
    plots += datapath_plots(outdir)
    # The pages cannot be scanned before they exist: write them from a scan of everything else, then scan the
    # whole directory, pages included, and write them again with that result (a leak in a page shows there).
    scan = scan_dir(outdir, skip=[outdir / HTML_NAME, outdir / MD_NAME, outdir / JSON_NAME])
    page = _page(data, scan, diff, plots)
    _write(outdir, page)
    page = _page(data, scan_dir(outdir), diff, plots)
    html_path, md_path = _write(outdir, page)
    return ReportSummary(
        verdict=page.verdict,
        scorecard=page.scorecard,
        failures=page.failures,
        baseline_diff=diff,
        html_path=html_path,
        md_path=md_path,
        plots=[p.path for p in plots],
        standin=data.standin,
    )
