"""``summary.md``: the verdict, the stand-in note, the scorecard and the top failures, for a CI comment."""

from __future__ import annotations

from clusterproof.findings import Status
from clusterproof.report.fmt import md_cell
from clusterproof.report.pagedata import AREAS, STANDIN_BANNER, STATUS_WORD, PageData
from clusterproof.report.scrub import scrub

#: A CI comment should fit on a screen; the HTML page has the rest.
TOP_FAILURES = 15
PER_CRITERION = 5

_STATUS = {**STATUS_WORD, Status.FAIL: "**FAIL**"}


def _cell(value: object) -> str:
    """A scrubbed value, safe in a table cell or a list item."""
    return md_cell(scrub(str(value)))


def _failure_groups(p: PageData) -> list[str]:
    """The failing findings grouped under their criterion, the first few of each, so that one criterion with
    many failing findings does not hide another."""
    out: list[str] = []
    for c in p.verdict.failing():
        details = [f.line for f in c.failures]
        out.append(f"- **{_cell(c.criterion.heading)}** ({len(details)}):")
        out += [f"  - {_cell(d)}" for d in details[:PER_CRITERION]]
        if len(details) > PER_CRITERION:
            out.append(f"  - … and {len(details) - PER_CRITERION} more in `index.html`")
    return out


def render(p: PageData) -> str:
    """Return the Markdown summary of ``p`` (every string scrubbed of secrets)."""
    m = p.data.meta
    lines = [
        f"## clusterproof: {p.word} on {_cell(m.cluster)}",
        "",
        f"Run `{_cell(m.run_id)}`, started {m.started_at:%Y-%m-%d %H:%M} UTC"
        + (f", {len(m.nodes)} nodes" if m.nodes else "")
        + f". {p.counts_line()}.",
        "",
    ]
    if p.standin:
        head, _, rest = STANDIN_BANNER.partition(":")
        lines += [f"> **{head}:**{rest}", ""]
    lines += ["| Area | Criterion | Result | Evidence |", "|---|---|---|---|"]
    for area in AREAS:
        for c in (c for c in p.verdict.criteria if c.criterion.area.value == area):
            lines.append(f"| {area} | {_cell(c.criterion.heading)} | {_STATUS[c.status]} | {_cell(c.headline)} |")
    if p.failures:
        lines += ["", f"### Failures ({len(p.failures)})", ""]
        lines += _failure_groups(p)
    if p.diff is not None:
        lines += ["", "### Baseline", "", _cell(p.diff.summary())]
        for title, items in (("Regressions", [r.message for r in p.diff.regressions]),
                             ("New failures", p.diff.new_failures), ("Fixed", p.diff.fixed)):
            if items:
                lines += ["", f"{title}:", ""] + [f"- {_cell(i)}" for i in items[:TOP_FAILURES]]
                if len(items) > TOP_FAILURES:
                    lines.append(f"- … and {len(items) - TOP_FAILURES} more")
    lines += ["", "Full report: `index.html` in the run directory.", ""]
    # Values were scrubbed cell by cell: a pass over the whole table would take "KEY=***REDACTED*** |" apart.
    return "\n".join(lines)
