"""The report page: one self-contained ``index.html`` (inline CSS, images as data URIs, no JavaScript, no
network). Every piece of text is scrubbed of secrets and then HTML-escaped."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from clusterproof import __version__
from clusterproof.findings import Criterion, Finding, Status
from clusterproof.report import fmt, reference_section
from clusterproof.report.pagedata import AREAS, STANDIN_BANNER, STATUS_WORD, PageData
from clusterproof.report.plots import Plot
from clusterproof.report.scrub import scrub

#: Long failure lists are cut here on the page; the CSV files keep every row.
MAX_ROWS = 200

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#1f2328;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,"Noto Sans",sans-serif}
main{max-width:1200px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:24px;margin:4px 0 2px}
h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid #d8dee4}
h3{font-size:16px;margin:20px 0 8px}
.meta{color:#57606a;font-size:14px}
.meta span{margin-right:14px;white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:13px}
.banner{margin:16px 0;padding:12px 16px;border:1px solid #e3b341;border-left:8px solid #d4a72c;
background:#fff8e1;border-radius:6px;font-size:15px}
.verdict{display:flex;align-items:center;gap:24px;margin:16px 0;padding:16px 22px;border-radius:8px;
background:#fff;border:1px solid #d8dee4;border-left:14px solid #1a7f37}
.verdict.fail{border-left-color:#cf222e}
.verdict .word{font-size:46px;font-weight:800;letter-spacing:2px;color:#1a7f37;line-height:1}
.verdict.fail .word{color:#cf222e}
.verdict .what{font-size:16px}
.verdict .which{font-size:14px;color:#57606a;margin-top:4px}
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:4px 0;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:7px 9px;text-align:left;vertical-align:top;border-bottom:1px solid #eaeef2}
th{background:#f6f8fa;font-weight:600}
tbody tr:nth-child(even) td{background:#fbfcfd}
tbody tr:last-child td{border-bottom:none}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.area{font-weight:600;background:#f6f8fa !important;white-space:nowrap}
td.evidence{overflow-wrap:anywhere}
td.wrap{overflow-wrap:anywhere}
td.test{width:34%;overflow-wrap:anywhere}
td.nw{white-space:nowrap}
.badge{display:inline-block;min-width:84px;text-align:center;padding:2px 10px;border-radius:12px;
font-size:13px;font-weight:700;white-space:nowrap}
.b-pass{background:#dafbe1;color:#116329}
.b-fail{background:#ffebe9;color:#b3261e}
.b-nt{background:#eaeef2;color:#57606a}
.b-info{background:#ddf4ff;color:#0550ae}
.b-known{background:#fff8c5;color:#7d4e00}
tr.odd td{background:#fff1f0 !important}
pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:13px}
figure{margin:14px 0 24px;background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:12px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{color:#57606a;font-size:13px;margin-top:6px}
ul.cases{margin:6px 0 0;padding-left:22px}
ul.cases li{margin:3px 0;overflow-wrap:anywhere}
details{margin:12px 0}
summary{cursor:pointer;font-weight:600}
.muted{color:#57606a}
footer{margin-top:40px;color:#57606a;font-size:13px}
"""


def esc(value: Any) -> str:
    """Scrub, then escape for HTML; NA and NaN show as an empty cell."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(scrub(str(value)), quote=True)


_BADGE = {"pass": "b-pass", "fail": "b-fail", "not tested": "b-nt", "known limitation": "b-known",
          "known-limitation": "b-known"}


def _badge(status: str | Status) -> str:
    """A status badge: a :class:`Status`, or a table's verdict word (pass / fail / info / known-limitation)."""
    word = STATUS_WORD[status] if isinstance(status, Status) else (status.upper() if status in ("pass", "fail") else status)
    return f'<span class="badge {_BADGE.get(str(status), "b-info")}">{esc(word)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], num: Sequence[int] = (),
           row_classes: Sequence[str] | None = None, col_classes: dict[int, str] | None = None) -> str:
    """A table from already-escaped cells; ``num`` are the right-aligned column positions, ``col_classes``
    extra CSS classes per column position."""
    # Column names such as clock_offset_s may break after an underscore rather than widen the table.
    head = "".join(f"<th>{esc(h).replace('_', '_<wbr>')}</th>" for h in headers)
    classes = {j: "num" for j in num} | (col_classes or {})
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="{classes[j]}">{c}</td>' if j in classes else f"<td>{c}</td>"
                        for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="card"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _more(total: int) -> str:
    if total <= MAX_ROWS:
        return ""
    return f'<p class="muted">Showing {MAX_ROWS} of {total}; the CSV files next to this page hold every row.</p>'


def _log_link(path: Any) -> str:
    # Only plain relative paths become links: a report must not point anywhere outside itself.
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")) or ":" in path or ".." in path.split("/"):
        return esc(path)
    return f'<a href="{esc(path)}">{esc(path.rsplit("/", 1)[-1])}</a>'


def _header(p: PageData) -> str:
    m = p.data.meta
    parts = [f"run <code>{esc(m.run_id)}</code>", f"started {esc(m.started_at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'))} UTC"]
    if m.finished_at is not None:
        seconds = (m.finished_at - m.started_at).total_seconds()
        parts.append(f"took {esc(f'{seconds:.0f}')} s")
    nodes = m.nodes or sorted(p.data.nodes["node"].dropna().astype(str).unique())
    if nodes:
        parts.append(f"{len(nodes)} nodes")
    if m.launcher:
        parts.append(f"launcher {esc(m.launcher)}")
    if m.gid_index is not None:
        parts.append(f"GID index {esc(m.gid_index)}")
    if m.git_sha:
        parts.append(f"git <code>{esc(m.git_sha[:12])}</code>")
    meta = "".join(f"<span>{x}</span>" for x in parts)
    return f'<header><h1>clusterproof report: {esc(m.cluster)}</h1><div class="meta">{meta}</div></header>'


def _verdict(p: PageData) -> str:
    fail = not p.verdict.passed
    word = p.word
    cls = "verdict fail" if fail else "verdict"
    failing = [c.criterion.heading for c in p.verdict.failing()]
    which = f'<div class="which">Failing: {esc("; ".join(failing))}</div>' if failing else ""
    return (
        f'<section class="{cls}" id="verdict"><div class="word">{word}</div>'
        f'<div class="what">{esc(p.counts_line())}{which}</div></section>'
    )


def _scorecard(p: PageData) -> str:
    rows: list[list[str]] = []
    for area in AREAS:
        cards = [c for c in p.verdict.criteria if c.criterion.area.value == area]
        for i, c in enumerate(cards):
            area_cell = f'<td class="area" rowspan="{len(cards)}">{esc(area)}</td>' if i == 0 else ""
            rows.append([area_cell, esc(c.criterion.heading), _badge(c.status), esc(c.headline)])
    body = "".join(
        f"<tr>{r[0]}<td>{r[1]}</td><td>{r[2]}</td><td class=\"evidence\">{r[3]}</td></tr>" for r in rows
    )
    head = "<tr><th>Area</th><th>Criterion (ClusterMAX v2)</th><th>Result</th><th>Evidence</th></tr>"
    return (
        '<h2 id="scorecard">Scorecard</h2>'
        f'<div class="card"><table class="scorecard"><thead>{head}</thead><tbody>{body}</tbody></table></div>'
    )


def _evidence_cell(f: Finding) -> str:
    parts = []
    for e in f.evidence:
        link = _log_link(e.path) if e.path else ""
        quoted = "\n".join(e.lines)
        parts.append(link + (f"<pre>{esc(quoted)}</pre>" if quoted else ""))
    return "".join(parts)


def _unfit(p: PageData) -> str:
    """The nodes to leave out of the next run, with the reasons (the same list as ``unfit_nodes.txt``)."""
    if not p.unfit:
        return ""
    rows = [[esc(u.node), esc("; ".join(u.reasons))] for u in p.unfit]
    return (f'<h2 id="unfit">Unfit nodes ({len(p.unfit)})</h2><p class="muted">Also in <code>unfit_nodes.txt</code>.</p>'
            + _table(["Node", "Why"], rows))


def _failing(p: PageData) -> str:
    fails = p.failures
    if not fails:
        return ""
    out = [f'<h2 id="failures">Failing findings ({len(fails)})</h2>']
    rows = [[esc(f.criterion.heading), f'<span class="mono">{esc(f.subject)}</span>', f"<pre>{esc(f.message)}</pre>",
             _evidence_cell(f), f'<span class="mono">{esc(f.test_id or "")}</span>'] for f in fails[:MAX_ROWS]]
    out.append(_table(["Criterion", "Subject", "Message", "Evidence", "Test"], rows, col_classes={2: "wrap", 4: "test"})
               + _more(len(fails)))
    net = p.failed_network()
    if not net.empty:
        out.append(f"<h3>Network rows below threshold ({len(net)})</h3>")
        rows = [
            [esc(r.collective), esc(r.node_set), esc(fmt.as_int(r.n_nodes)), esc(fmt.size(r.size_bytes)), esc(r.placement),
             esc(fmt.gbs(r.busbw_gbs)), esc(fmt.gbs(r.threshold_gbs)), esc(_launcher(r)), _log_link(r.log_path)]
            for r in net.head(MAX_ROWS).itertuples()
        ]
        out.append(_table(["Collective", "Node set", "Nodes", "Size", "Placement", "busbw GB/s", "Threshold",
                           "Launcher", "Log"],
                          rows, num=(2, 3, 5, 6)) + _more(len(net)))
    st = p.failed_storage()
    if not st.empty:
        out.append(f"<h3>Storage cases not as expected ({len(st)})</h3>")
        rows = [[esc(r.issuer), esc(r.permission), esc(r.operation), esc(r.where), esc(r.expected), esc(r.observed),
                 f'<span class="mono">{esc(r.detail)}</span>'] for r in st.head(MAX_ROWS).itertuples()]
        out.append(_table(["Issuer", "Permission", "Operation", "Where", "Expected", "Observed", "Detail"], rows,
                          col_classes={6: "wrap"})
                   + _more(len(st)))
    return "".join(out)


def _baseline(p: PageData) -> str:
    d = p.diff
    if d is None:
        return ""
    out = ['<h2 id="baseline">Baseline comparison</h2>', f"<p>{esc(d.summary())}</p>"]
    for title, items in (("Regressions", [r.message for r in d.regressions]), ("New failures", d.new_failures),
                         ("Fixed", d.fixed)):
        if items:
            lis = "".join(f"<li>{esc(i)}</li>" for i in items[:MAX_ROWS])
            out.append(f'<h3>{esc(title)} ({len(items)})</h3><ul class="cases">{lis}</ul>{_more(len(items))}')
    return "".join(out)


def _png_data_uri(plot: Plot) -> str:
    return "data:image/png;base64," + base64.b64encode(plot.path.read_bytes()).decode("ascii")


_CAPTIONS = {
    "busbw_vs_size": "Bus bandwidth against message size (log-2 axis), one line per node count; the dashed "
    "step line is the threshold where one is set.",
    "large_busbw_by_node_set": "Bus bandwidth at the largest message size for each node set; red bars are "
    "below their threshold (black tick).",
    "pair_heatmap": "Every tested node pair at the largest size: a slow node shows as a red row and column.",
    "soak": "Soak: bus bandwidth at the largest size per cycle over elapsed time; dashed red lines mark cycles "
    "with wrong results.",
}


def _plots(p: PageData) -> str:
    if not p.plots:
        return '<h2 id="plots">Plots</h2><p class="muted">No network results, so no plots.</p>'
    figs = []
    for plot in p.plots:
        alt = esc(plot.title + (" (CPU stand-in, not GPU numbers)" if p.standin else ""))
        figs.append(
            f'<figure><img src="{_png_data_uri(plot)}" alt="{alt}">'
            f"<figcaption>{esc(_CAPTIONS.get(plot.kind, plot.title))}</figcaption></figure>"
        )
    return '<h2 id="plots">Plots</h2>' + "".join(figs)


_FORCED_NOTE = ('<p class="muted">Some rows ran with a result-changing NCCL setting forced in the launch '
                'environment (inventory <span class="mono">nccl_tests.env</span>): their busbw is what that setting '
                'produced, not what NCCL would choose.</p>')


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _launcher(row: Any) -> str:
    """The launcher that produced a network row (mpirun or srun), blank for rows saved before it was recorded."""
    return _text(getattr(row, "launcher", None))


def _large_messages(p: PageData) -> str:
    rows_df = p.large_message_rows()
    if rows_df.empty:
        return ""
    forced = "forced_nccl" in rows_df and rows_df["forced_nccl"].notna().any()
    rows = []
    for r in rows_df.head(MAX_ROWS).itertuples():
        status = str(r.verdict) if isinstance(r.verdict, str) else "info"
        rows.append([esc(r.collective), esc(r.node_set), esc(fmt.as_int(r.n_nodes)), esc(fmt.size(r.size_bytes)),
                     esc(fmt.gbs(r.busbw_gbs)), esc(fmt.gbs(r.threshold_gbs)), _badge(status),
                     *([f'<span class="mono">{esc(_text(r.forced_nccl))}</span>'] if forced else []),
                     esc(_launcher(r)), _log_link(r.log_path)])
    headers = ["Collective", "Node set", "Nodes", "Size", "busbw GB/s", "Threshold", "Verdict",
               *(["Forced NCCL setting"] if forced else []), "Launcher", "Log"]
    return (
        '<h2 id="large">Large-message results</h2>'
        + (_FORCED_NOTE if forced else "")
        + _table(headers, rows, num=(2, 3, 4, 5))
        + _more(len(rows_df))
    )


def _frame_table(df: pd.DataFrame, row_classes: Sequence[str] | None = None) -> str:
    num = tuple(i for i, c in enumerate(df.columns) if pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool)
    shown = df.head(MAX_ROWS)
    # Lists such as "eth0:1500,ib0:4092" may break after their commas (<wbr>) instead of widening the table.
    rows = [[esc(fmt.number(v)) if j in num else esc(v).replace(",", ",<wbr>") for j, v in enumerate(rec)]
            for rec in shown.itertuples(index=False)]
    # Short values (host names, addresses, versions) read badly when broken at a hyphen; long ones may wrap.
    short = {i: "nw" for i, c in enumerate(df.columns)
             if i not in num and shown[c].astype(str).str.len().max() <= 16}
    return _table([str(c) for c in df.columns], rows, num=num, row_classes=row_classes, col_classes=short) + _more(len(df))


def _nodes(p: PageData) -> str:
    nodes = p.data.nodes
    if nodes.empty:
        return '<h2 id="nodes">Node facts</h2><p class="muted">No node facts were collected.</p>'
    keep = [c for c in nodes.columns if nodes[c].notna().any()]
    return '<h2 id="nodes">Node facts</h2>' + _frame_table(nodes[keep])


def _transport(p: PageData) -> str:
    t = p.data.transport
    if t is None:
        return ""
    card = p.verdict.of(Criterion.TRANSPORT)
    verdict = f"<p>{_badge(card.status)} {esc(card.headline)}</p>"
    if t.empty:
        return f'<h2 id="transport">Transport (NCCL logs)</h2>{verdict}<p class="muted">The transport table is empty.</p>'
    df = t.reset_index(drop=True)
    # The rows were written when the run was judged: ``odd``/``why`` say what stood out then; nothing is re-judged.
    odd = df["odd"].astype("boolean").fillna(False).astype(bool) if "odd" in df.columns else pd.Series(False, index=df.index)
    shown = df[[c for c in df.columns if c not in ("run_id", "odd") and df[c].notna().any()]]
    classes = ["odd" if o else "" for o in odd]
    counts = f"{int(odd.sum())} of {len(df)} ranks stand out (highlighted)." if odd.any() else f"{len(df)} ranks."
    return f'<h2 id="transport">Transport (NCCL logs)</h2>{verdict}<p class="muted">{esc(counts)}</p>' + _frame_table(shown, classes)


def _storage_all(p: PageData) -> str:
    st = p.data.storage
    if st.empty:
        return ""
    cols = ["issuer", "permission", "operation", "where", "expected", "observed", "verdict", "detail"]
    rows = [[esc(r.issuer), esc(r.permission), esc(r.operation), esc(r.where), esc(r.expected), esc(r.observed),
             _badge(str(r.verdict)), f'<span class="mono">{esc(r.detail)}</span>'] for r in st.head(MAX_ROWS).itertuples()]
    n_fail = int((st["verdict"] == "fail").sum())
    return (
        f'<h2 id="storage">Storage cases</h2><details><summary>All {len(st)} cases ({n_fail} not as expected)'
        f"</summary>{_table(cols, rows)}{_more(len(st))}</details>"
    )


_ORDER = {Status.FAIL: 0, Status.KNOWN_LIMITATION: 1, Status.NOT_TESTED: 2, Status.PASS: 3}


def _findings(p: PageData) -> str:
    every = [f for c in p.verdict.criteria for f in c.findings]
    if not every:
        return ""
    ordered = sorted(every, key=lambda f: (_ORDER[f.status], f.criterion.value, str(f.subject)))
    counts = ", ".join(f"{n} {STATUS_WORD[s].lower()}" for s in _ORDER if (n := sum(f.status is s for f in every)))
    rows = [[esc(f.criterion.heading), f'<span class="mono">{esc(f.subject)}</span>', _badge(f.status),
             esc(f.message if f.reason is None or f.reason == f.message else f"{f.message} ({f.reason})"),
             f'<span class="mono">{esc(f.test_id or "")}</span>'] for f in ordered[:MAX_ROWS]]
    return (
        f'<h2 id="findings">Findings</h2><details><summary>{len(every)} findings: {esc(counts)}</summary>'
        f"{_table(['Criterion', 'Subject', 'Status', 'Message', 'Test'], rows, col_classes={3: 'wrap', 4: 'test'})}"
        f"{_more(len(every))}</details>"
    )


def _metadata(p: PageData) -> str:
    m = p.data.meta
    items = [
        ("cluster", m.cluster), ("run id", m.run_id), ("started", m.started_at.isoformat()),
        ("finished", m.finished_at.isoformat() if m.finished_at else "still running or unknown"),
        ("CPU stand-in", "yes" if p.standin else "no"), ("launcher", m.launcher or ""),
        ("GID index", "" if m.gid_index is None else m.gid_index), ("nodes", ", ".join(m.nodes)),
        ("pytest arguments", " ".join(m.pytest_args)), ("git commit", m.git_sha or ""),
    ]
    items += [(f"version: {k}", v) for k, v in sorted(m.versions.items())]
    items += [(f"extra: {k}", v) for k, v in sorted(m.extra.items())]
    rows = [[esc(k), f'<span class="mono">{esc(v)}</span>'] for k, v in items]
    return f'<h2 id="run">Run</h2><details><summary>Run metadata</summary>{_table(["Field", "Value"], rows)}</details>'


def render(p: PageData) -> str:
    """Return the whole report page for ``p`` as one HTML string."""
    title = f"clusterproof {p.word}: {p.data.meta.cluster} ({p.data.meta.run_id})"
    head, _, rest = STANDIN_BANNER.partition(":")
    banner = f'<div class="banner" id="standin"><b>{esc(head)}:</b>{esc(rest)}</div>' if p.standin else ""
    body = [
        _header(p), banner, _verdict(p), _scorecard(p), _plots(p), _failing(p), _unfit(p), _baseline(p), _large_messages(p),
        reference_section.html_section(p.data.outdir),
        _nodes(p), _transport(p), _storage_all(p), _findings(p), _metadata(p),
        f"<footer>Generated by clusterproof {esc(__version__)} at "
        f"{esc(datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S'))} UTC from the saved data in this directory. "
        "Rebuild with <code>clusterproof report build &lt;this directory&gt;</code>.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
