"""``summary.md``: the verdict, the stand-in note, the scorecard and the top failures, for a CI comment."""

from __future__ import annotations

from clusterproof.report.fmt import md_cell
from clusterproof.report.pagedata import STANDIN_BANNER, PageData
from clusterproof.report.scorecard import AREAS, FAIL, NOT_TESTED, PASS
from clusterproof.report.scrub import scrub

#: A CI comment should fit on a screen; the HTML page has the rest.
TOP_FAILURES = 15

_STATUS = {PASS: "PASS", FAIL: "**FAIL**", NOT_TESTED: "not tested"}


def render(p: PageData) -> str:
    """Return the Markdown summary of ``p`` (every string scrubbed of secrets)."""
    m = p.data.meta
    lines = [
        f"## clusterproof: {'FAIL' if p.verdict == 'fail' else 'PASS'} on {md_cell(m.cluster)}",
        "",
        f"Run `{md_cell(m.run_id)}`, started {m.started_at:%Y-%m-%d %H:%M} UTC"
        + (f", {len(m.nodes)} nodes" if m.nodes else "")
        + f". {p.counts_line()}.",
        "",
    ]
    if p.standin:
        head, _, rest = STANDIN_BANNER.partition(":")
        lines += [f"> **{head}:**{rest}", ""]
    lines += ["| Area | Criterion | Result | Evidence |", "|---|---|---|---|"]
    for area in AREAS:
        for c in (c for c in p.scorecard if c.area == area):
            lines.append(f"| {area} | {md_cell(c.name)} | {_STATUS.get(c.status, c.status)} | {md_cell(c.evidence)} |")
    if p.failures:
        lines += ["", f"### Top failures ({min(len(p.failures), TOP_FAILURES)} of {len(p.failures)})", ""]
        lines += [f"- {md_cell(f)}" for f in p.failures[:TOP_FAILURES]]
        if len(p.failures) > TOP_FAILURES:
            lines.append(f"- … and {len(p.failures) - TOP_FAILURES} more in `index.html`")
    if p.diff is not None:
        lines += ["", "### Baseline", "", md_cell(p.diff.summary())]
        for title, items in (("Regressions", [r.message for r in p.diff.regressions]),
                             ("New failures", p.diff.new_failures), ("Fixed", p.diff.fixed)):
            if items:
                lines += ["", f"{title}:", ""] + [f"- {md_cell(i)}" for i in items[:TOP_FAILURES]]
                if len(items) > TOP_FAILURES:
                    lines.append(f"- … and {len(items) - TOP_FAILURES} more")
    lines += ["", "Full report: `index.html` in the run directory.", ""]
    return scrub("\n".join(lines))
