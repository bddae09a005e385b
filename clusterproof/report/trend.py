"""Trends across runs: large-message busbw and storage pass rate per run, as a table, a PNG and a small
self-contained ``history.html``. This is ``clusterproof report history reports/``."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from clusterproof.errors import ParseError
from clusterproof.findings import Criterion, FindingsFileError, Status, read_findings
from clusterproof.network.reference import left_band
from clusterproof.report import fmt
from clusterproof.report.html import CSS, esc
from clusterproof.report.meta import RunMeta
from clusterproof.report.paths import run_dirs
from clusterproof.report.plots import DPI, PALETTE, title_with_note
from clusterproof.report.tables import read_network

#: One row per run and metric: ``large_busbw_gbs`` per (collective, n_nodes), ``storage_pass_rate_pct``.
HISTORY_COLUMNS = ("run_id", "started_at", "cluster", "standin", "verdict", "metric", "collective", "n_nodes",
                   "size_bytes", "value", "left_reference_band")
MAX_RUN_LABELS = 15


def _run_facts(run: Path) -> dict[str, Any]:
    facts: dict[str, Any] = {"run_id": run.name, "started_at": pd.NaT, "cluster": None, "standin": False,
                             "verdict": None, "left_reference_band": _left_band(run)}
    meta_path = run / "metadata.json"
    if meta_path.is_file():
        try:
            meta = RunMeta.from_json(meta_path.read_text(encoding="utf-8"), source=str(meta_path))
        except ParseError:
            meta = None  # a broken run must not hide the others; it still shows by its directory name
        if meta is not None:
            facts.update(run_id=meta.run_id, started_at=pd.Timestamp(meta.started_at), cluster=meta.cluster,
                         standin=meta.standin)
    card = run / "scorecard.json"
    if card.is_file():
        try:
            facts["verdict"] = json.loads(card.read_text(encoding="utf-8")).get("verdict")
        except (json.JSONDecodeError, AttributeError):
            pass
    return facts


def _left_band(run: Path) -> str:
    """"" when no row of the run was judged against a reference; else "in band" or the rows that left it."""
    try:
        ref = [f for f in read_findings(run) if f.criterion is Criterion.REFERENCE and f.status in (Status.PASS, Status.FAIL)]
    except FindingsFileError:
        return ""
    out = left_band(ref)
    if not ref:
        return ""
    if not out:
        return "in band"
    first = out[0].message.split(":", 1)[0]
    return f"{len(out)} of {len(ref)} rows out ({first}{' …' if len(out) > 1 else ''})"


def _busbw_rows(run: Path, facts: dict[str, Any]) -> list[dict[str, Any]]:
    path = run / "results.parquet"
    if not path.is_file():
        return []
    net = read_network(path).dropna(subset=["size_bytes", "busbw_gbs", "n_nodes"])
    if net.empty:
        return []
    placement = fmt.placement_for_plots(net)
    net = net[net["placement"] == placement]
    if bool(net["standin"].fillna(False).astype(bool).any()):
        facts["standin"] = True
    rows = []
    for (collective, n_nodes), g in net.groupby(["collective", "n_nodes"], sort=True):
        largest = int(g["size_bytes"].max())
        # Median over node sets: one slow pair should not move the trend of the whole fabric.
        value = float(g[g["size_bytes"] == largest]["busbw_gbs"].median())
        rows.append({**facts, "metric": "large_busbw_gbs", "collective": collective, "n_nodes": fmt.as_int(n_nodes),
                     "size_bytes": largest, "value": value})
    return rows


def _storage_rows(run: Path, facts: dict[str, Any]) -> list[dict[str, Any]]:
    path = run / "storage.csv"
    if not path.is_file():
        return []
    try:
        st = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return []
    if st.empty or "verdict" not in st.columns:
        return []
    rate = float((st["verdict"] == "pass").mean() * 100.0)
    return [{**facts, "metric": "storage_pass_rate_pct", "collective": None, "n_nodes": None, "size_bytes": None,
             "value": rate}]


def _run_label(run_id: str, started: Any) -> str:
    if isinstance(started, pd.Timestamp) and not pd.isna(started):
        return started.strftime("%m-%d %H:%M")
    return run_id[:15]


def _draw(df: pd.DataFrame, png: Path) -> None:
    runs = df.drop_duplicates("run_id")[["run_id", "started_at"]].reset_index(drop=True)
    x_of = {r: i for i, r in enumerate(runs["run_id"])}
    labels = [_run_label(r, s) for r, s in zip(runs["run_id"], runs["started_at"], strict=True)]
    bw = df[df["metric"] == "large_busbw_gbs"]
    st = df[df["metric"] == "storage_pass_rate_pct"]
    panels = int(not bw.empty) + int(not st.empty)
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3.4 * panels + 0.6), layout="constrained", squeeze=False,
                             sharex=True)
    ax_iter = iter(axes[:, 0])
    standin = bool(df["standin"].astype(bool).any())
    if not bw.empty:
        ax = next(ax_iter)
        for i, ((collective, n_nodes), g) in enumerate(bw.groupby(["collective", "n_nodes"], sort=True)):
            xs = [x_of[r] for r in g["run_id"]]
            size = fmt.size(g["size_bytes"].iloc[-1])
            ax.plot(xs, g["value"], marker="o", ms=4, lw=1.8, color=PALETTE[i % len(PALETTE)],
                    label=f"{collective}, {fmt.as_int(n_nodes)} nodes ({size})")
        ax.set_ylabel("busbw at largest size (GB/s)")
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower left", fontsize=8.5, ncol=2)
        ax.set_title(title_with_note("Large-message bus bandwidth per run", standin), loc="left")
    if not st.empty:
        ax = next(ax_iter)
        xs = [x_of[r] for r in st["run_id"]]
        colours = ["#1a7f37" if v >= 100 else "#cf222e" for v in st["value"]]
        ax.plot(xs, st["value"], color="#57606a", lw=1.2, zorder=1)
        ax.scatter(xs, st["value"], c=colours, s=36, zorder=2)
        ax.set_ylim(-3, 105)
        ax.set_ylabel("storage cases passed (%)")
        ax.set_title("Storage pass rate per run", loc="left")
    step = max(1, int(np.ceil(len(labels) / MAX_RUN_LABELS)))
    last = axes[-1, 0]
    last.set_xticks(range(0, len(labels), step), labels[::step], rotation=30, ha="right")
    last.set_xlim(-0.5, len(labels) - 0.5)
    last.set_xlabel("run (start time, UTC)")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=DPI, facecolor="white")
    plt.close(fig)


def _page(df: pd.DataFrame, png: Path, root: Path) -> str:
    bw = df[df["metric"] == "large_busbw_gbs"].copy()
    runs = df.drop_duplicates("run_id")[["run_id", "started_at", "cluster", "standin", "verdict", "left_reference_band"]]
    table = runs.set_index("run_id")
    if not bw.empty:
        bw["series"] = bw["collective"].astype(str) + " " + bw["n_nodes"].astype(int).astype(str) + "n"
        pivot = bw.pivot_table(index="run_id", columns="series", values="value", aggfunc="first")
        table = table.join(pivot)
    st = df[df["metric"] == "storage_pass_rate_pct"].set_index("run_id")["value"].rename("storage pass %")
    table = table.join(st)
    names = {"started_at": "started (UTC)", "standin": "numbers from", "verdict": "verdict", "cluster": "cluster",
             "left_reference_band": "reference band"}
    head = "".join(f"<th>{esc(names.get(str(c), c))}</th>" for c in ["run id", *table.columns])
    body = []
    for run_id, rec in table.iloc[::-1].iterrows():  # newest first
        cells = [f'<td><a href="{esc(run_id)}/index.html">{esc(run_id)}</a></td>']
        for col, v in rec.items():
            if col == "started_at":
                text = v.strftime("%Y-%m-%d %H:%M") if isinstance(v, pd.Timestamp) and not pd.isna(v) else ""
            elif col == "standin":
                text = "CPU stand-in" if bool(v) else "GPU"
            elif isinstance(v, float):
                text = "" if np.isnan(v) else (f"{v:.0f}" if col == "storage pass %" else fmt.gbs(v))
            else:
                text = "" if v is None or v is pd.NA else str(v)
            cells.append(f"<td>{esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    img = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    standin = bool(df["standin"].astype(bool).any())
    banner = ('<div class="banner"><b>CPU stand-in:</b> some runs used the sandbox stand-in; their bandwidth is not '
              "a GPU number.</div>") if standin else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>clusterproof history: {html.escape(str(root.name))}</title><style>{CSS}</style></head><body><main>"
        f"<h1>clusterproof history</h1><div class=\"meta\">{len(runs)} runs under {esc(root)}</div>{banner}"
        f'<figure><img src="{img}" alt="busbw and storage pass rate per run" width="990"></figure>'
        f'<h2>Runs</h2><div class="card"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table></div></main></body></html>\n"
    )


def history(reports_root: Path, outfile: Path | None = None) -> pd.DataFrame:
    """Scan ``reports_root/*/results.parquet`` and ``storage.csv``; write the trend PNG and ``history.html``.

    ``outfile`` is the HTML path (default ``reports_root/history.html``); the PNG goes next to it with the same
    stem. Runs are ordered by their id, which sorts by start time.

    Returns:
        A tidy frame with ``HISTORY_COLUMNS``: per run, ``large_busbw_gbs`` (median over node sets at the
        largest size, out-of-place) per collective and node count, and ``storage_pass_rate_pct``. Empty (and
        nothing written) when no run has results.
    Raises:
        ClusterproofError: ``reports_root`` is not a directory.
    """
    reports_root = Path(reports_root)
    rows: list[dict[str, Any]] = []
    for run in run_dirs(reports_root):
        facts = _run_facts(run)
        rows += _busbw_rows(run, facts)
        rows += _storage_rows(run, facts)
    df = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    if df.empty:
        return df  # nothing to draw; the caller says so
    df["n_nodes"] = df["n_nodes"].astype("Int64")
    df["size_bytes"] = df["size_bytes"].astype("Int64")
    df["standin"] = df.groupby("run_id")["standin"].transform("max").astype(bool)
    outfile = Path(outfile) if outfile is not None else reports_root / "history.html"
    png = outfile.with_suffix(".png")
    _draw(df, png)
    outfile.write_text(_page(df, png, reports_root), encoding="utf-8")
    return df
