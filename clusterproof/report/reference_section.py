"""The report's "Is this number normal?" section: for every row the checks judged, how far it is from its
reference (and which file that came from), its fraction of line rate, and the outlier nodes; plus the soak's
busbw-over-time plot. Nothing is judged here: the numbers and verdicts are the recorded findings
(``Criterion.REFERENCE``, ``LINE_RATE``, ``BAD_NODE``, ``SOAK``) read back from ``<run>/findings/``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import pandas as pd

from clusterproof.findings import Criterion, Finding, FindingsFileError, Status, read_findings
from clusterproof.network.soak import read_table
from clusterproof.report.plots import DPI, PALETTE, Plot, title_with_note
from clusterproof.units import human_size


def _findings(run_dir: Path) -> list[Finding]:
    try:
        return read_findings(run_dir)
    except FindingsFileError:
        return []  # the scorecard reports a broken findings file; this section just stays empty


def _key(f: Finding) -> tuple[str, int, str, int, str]:
    v = f.values
    return (str(v.get("collective")), int(v.get("n_nodes") or 0), str(f.subject.name), int(v.get("size_bytes") or 0),
            str(v.get("placement")))


def _badge(status: Status) -> str:
    cls = {Status.PASS: "pass", Status.FAIL: "fail"}.get(status, "info")
    return f'<span class="badge {cls}">{html.escape(status.value.upper())}</span>'


def row_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """One row per judged (collective, node set, size, placement): busbw, reference, % of reference, band,
    % of line rate, with the source of each number."""
    rows: dict[tuple[str, int, str, int, str], dict[str, object]] = {}
    for f in findings:
        if f.criterion not in (Criterion.REFERENCE, Criterion.LINE_RATE) or "busbw_gbs" not in f.values:
            continue
        rec = rows.setdefault(_key(f), {"busbw_gbs": f.values["busbw_gbs"]})
        if f.criterion is Criterion.REFERENCE:
            rec.update(reference_gbs=f.values.get("reference_gbs"), band_gbs=f.values.get("reference_lower_gbs"),
                       pct_of_reference=f.values.get("pct_of_reference"), reference_file=f.values.get("reference_file"),
                       reference_status=f.status)
        else:
            rec.update(pct_of_line_rate=f.values.get("pct_of_line_rate"), line_rate=f.values.get("line_rate"),
                       line_rate_standin=f.values.get("standin_facts"), line_rate_status=f.status)
    out = [{"collective": k[0], "n_nodes": k[1], "node_set": k[2], "size_bytes": k[3], "placement": k[4], **v}
           for k, v in sorted(rows.items())]
    return pd.DataFrame(out)


def html_section(run_dir: Path, max_rows: int = 200) -> str:
    """The section's HTML ("" when no check recorded a reference, line-rate or outlier finding)."""
    found = _findings(run_dir)
    table = row_table(found)
    outliers = [f for f in found if f.criterion is Criterion.BAD_NODE and f.subject.kind == "node" and "pct_of_cluster_median" in f.values]
    if table.empty and not outliers:
        return ""
    parts = ['<h2 id="reference">Is this number normal?</h2>']
    if not table.empty:
        files = sorted({str(x) for x in table.get("reference_file", pd.Series(dtype=object)).dropna()})
        src = f"References from {', '.join(html.escape(x) for x in files)}." if files else "No reference file for this cluster."
        lr_standin = bool(table.get("line_rate_standin", pd.Series(dtype=object)).fillna(False).astype(bool).any())
        lr_note = " Line rates come from the sandbox's stand-in facts (a fake HCA), not from a real port." if lr_standin else ""
        parts.append(f'<p class="muted">{src}{lr_note} busbw is measured (see the logs).</p>')
        head = ["Collective", "Node set", "Size", "Placement", "busbw GB/s", "Reference", "% of reference", "Band ≥",
                "Verdict", "% of line rate"]
        body = []
        for r in cast(list[dict[str, Any]], table.head(max_rows).to_dict("records")):
            def num(key: str, fmt: str = "{:.4g}", rec: dict[str, Any] = r) -> str:
                v = rec.get(key)
                return "" if v is None or (isinstance(v, float) and pd.isna(v)) else fmt.format(v)
            lr = f"{num('pct_of_line_rate', '{:.1f}')}% of {r.get('line_rate')}" if num("pct_of_line_rate") else ""
            status = r.get("reference_status")
            cells = [r["collective"], r["node_set"], human_size(int(r["size_bytes"])), r["placement"], num("busbw_gbs"),
                     num("reference_gbs"), f"{num('pct_of_reference', '{:.0f}')}% of reference" if num("pct_of_reference") else "",
                     num("band_gbs")]
            tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            tds += f"<td>{_badge(status) if isinstance(status, Status) else ''}</td><td>{html.escape(lr)}</td>"
            body.append(f"<tr>{tds}</tr>")
        ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        parts.append(f'<div class="card"><table><thead><tr>{ths}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')
    if outliers:
        items = "".join(f"<li>{_badge(f.status)} {html.escape(f.message)}</li>" for f in sorted(outliers, key=lambda f: f.subject.name))
        parts.append(f"<h3>Per-node comparison (sub-set, pair and single-node runs)</h3><ul>{items}</ul>")
    return "".join(parts)


def draw_soak(run_dir: Path, outdir: Path, standin: bool) -> list[Plot]:
    """busbw over the soak's time, one panel per collective, one line per node set at the largest size."""
    df = read_table(run_dir)
    if df is None or df.empty:
        return []
    df = df[df["busbw_gbs"] > 0]
    plots = []
    for collective, g in df.groupby("collective", sort=True):
        big = g[g["size_bytes"] == g["size_bytes"].max()]
        fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
        for i, (node_set, s) in enumerate(big.groupby("node_set", sort=True)):
            per = s.groupby("elapsed_s", sort=True)["busbw_gbs"].min()
            ax.plot(per.index, per.values, marker="o", ms=3, lw=1.4, color=PALETTE[i % len(PALETTE)], label=str(node_set))
        wrong = g[g["wrong"].fillna(0) > 0]
        for t in sorted(set(wrong["elapsed_s"])):
            ax.axvline(t, color="#cf222e", lw=1, ls="--")
        ax.set_xlabel("elapsed (s)")
        ax.set_ylabel(f"busbw at {human_size(int(big['size_bytes'].max()))} (GB/s)")
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower left", fontsize=7.5, ncol=3)
        title = f"Soak: {collective} busbw over time (red: a cycle with wrong results)"
        ax.set_title(title_with_note(title, standin), loc="left")
        outdir.mkdir(parents=True, exist_ok=True)
        path = outdir / f"soak_{collective}.png"
        fig.savefig(path, dpi=DPI, facecolor="white", metadata={"Title": title})
        plt.close(fig)
        plots.append(Plot("soak", path, title))
    return plots
