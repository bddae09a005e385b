"""The report's figures (matplotlib, Agg backend, PNG): busbw against message size per collective, large-message
busbw per node set, and a heat map of node pairs when pairs were tested to find a slow node.

Every title says "CPU stand-in — not GPU numbers" when the run used the stand-in, so a screenshot of a
single plot cannot be mistaken for a GPU result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are drawn on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import Normalize, TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from clusterproof.redact import redact  # noqa: E402
from clusterproof.report import fmt  # noqa: E402

STANDIN_NOTE = "CPU stand-in — not GPU numbers"
#: Okabe–Ito: distinguishable with the common colour-vision deficiencies, calm on a white page.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
PASS_COLOUR = "#3A7DC9"
FAIL_COLOUR = "#D62728"
NEUTRAL_COLOUR = "#9AA0A6"
THRESHOLD_COLOUR = "#333333"
DPI = 110
#: tight layout costs half of constrained layout and is enough for one axes with a colour bar at most.
LAYOUT = "tight"
#: At most this many size labels on an x axis, so they never collide at laptop width.
MAX_SIZE_TICKS = 12

plt.rcParams.update(
    {
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#E5E7EB",
        "grid.linewidth": 0.8,
        "axes.axisbelow": True,
        "legend.frameon": False,
    }
)


@dataclass(frozen=True)
class Plot:
    """One figure written to disk."""

    kind: str  # "busbw_vs_size" | "large_busbw_by_node_set" | "pair_heatmap" | "history"
    path: Path
    title: str  # one line, for captions and alt text


def title_with_note(title: str, standin: bool) -> str:
    """``title``, plus the stand-in note on a second line when the numbers come from the stand-in."""
    return f"{title}\n{STANDIN_NOTE}" if standin else title


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "plot"


@dataclass
class Drawn:
    """A figure built but not yet saved: tests inspect it (titles, label overlaps) before it is closed."""

    kind: str
    filename: str
    title: str  # one line, without the stand-in note
    full_title: str  # what the figure shows as its title, with the stand-in note when there is one
    figure: Figure


def save(drawn: Drawn, outdir: Path) -> Plot:
    """Write ``drawn`` as a PNG under ``outdir`` (the full title also goes into the PNG's Title field) and close
    the figure.

    Returns:
        The plot written.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / drawn.filename
    drawn.figure.savefig(path, dpi=DPI, facecolor="white", metadata={"Title": drawn.full_title})
    plt.close(drawn.figure)
    return Plot(drawn.kind, path, drawn.title)


def label_overlaps(fig: Figure) -> list[str]:
    """Pairs of visible tick labels, axis labels or titles whose boxes overlap once drawn (should be none).

    Returns:
        One ``'a' overlaps 'b'`` line per overlapping pair.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = []
    for ax in fig.axes:
        for label in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label, ax.title]:
            if label.get_visible() and label.get_text():
                texts.append((label.get_text(), label.get_window_extent(renderer)))
    suptitle = getattr(fig, "_suptitle", None)  # no public getter for the suptitle artist
    if suptitle is not None:
        texts.append((suptitle.get_text(), suptitle.get_window_extent(renderer)))
    out = []
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1:]:
            if box_a.overlaps(box_b) and box_a.width > 0 and box_b.width > 0:
                out.append(f"{a!r} overlaps {b!r}")
    return out


def size_ticks(sizes: list[int]) -> tuple[list[int], list[str]]:
    """Powers of two covering ``sizes``, thinned to at most ``MAX_SIZE_TICKS``, with human labels."""
    lo = max(1, min(sizes))
    hi = max(sizes)
    ticks = [1 << e for e in range(int(np.floor(np.log2(lo))), int(np.ceil(np.log2(hi))) + 1)]
    step = max(1, int(np.ceil(len(ticks) / MAX_SIZE_TICKS)))
    ticks = ticks[::step]
    return ticks, [fmt.size(t) for t in ticks]


def collective_order(collectives: Any) -> list[str]:
    """all_reduce first (the collective everyone quotes), then the others alphabetically."""
    return sorted({str(c) for c in collectives}, key=lambda c: (c != "all_reduce", c))


def _threshold_curve(group: pd.DataFrame) -> pd.Series:
    thr = group.groupby("size_bytes")["threshold_gbs"].max().dropna()
    return thr.sort_index()


def curve_figures(network: pd.DataFrame, standin: bool, cluster: str = "") -> list[Drawn]:
    """Per collective: busbw against message size, a line per node count (median and min–max band when several
    node sets share a node count), the threshold as a dashed step line."""
    placement = fmt.placement_for_plots(network)
    if placement is None:
        return []
    # Sizes of 0 bytes have no place on a log axis.
    df = network[(network["placement"] == placement) & network["busbw_gbs"].notna() & (network["size_bytes"] > 0)]
    drawn: list[Drawn] = []
    for collective in collective_order(df["collective"].unique()):
        cdf = df[df["collective"] == collective]
        fig, ax = plt.subplots(figsize=(9, 4.6), layout=LAYOUT)
        counts = sorted(fmt.as_int(n) for n in cdf["n_nodes"].unique())
        thresholds: dict[int, pd.Series] = {}
        for i, (n_nodes, g) in enumerate(cdf.groupby("n_nodes", sort=True)):
            colour = PALETTE[i % len(PALETTE)]
            per_size = g.groupby("size_bytes")["busbw_gbs"]
            sets = g["node_set"].nunique()
            x = np.array(sorted(g["size_bytes"].unique()), dtype=float)
            if sets > 1:
                ax.fill_between(x, per_size.min().to_numpy(), per_size.max().to_numpy(), color=colour, alpha=0.15, lw=0)
                label = f"{n_nodes} nodes (median of {sets} sets, band = min–max)"
                y = per_size.median().to_numpy()
            else:
                label = f"{n_nodes} nodes"
                y = per_size.mean().to_numpy()
            ax.plot(x, y, marker="o", ms=3.5, lw=1.8, color=colour, label=label)
            thr = _threshold_curve(g)
            if not thr.empty:
                thresholds[fmt.as_int(n_nodes)] = thr
        # One black threshold line when every node count has the same one, else one per count in its colour.
        same = len({tuple(t.items()) for t in thresholds.values()}) == 1
        for i, (n_nodes, thr) in enumerate(sorted(thresholds.items())):
            if same and i > 0:
                break
            colour = THRESHOLD_COLOUR if same else PALETTE[counts.index(n_nodes) % len(PALETTE)]
            label = "threshold" if same else f"threshold ({n_nodes} nodes)"
            ax.step(thr.index.to_numpy(dtype=float), thr.to_numpy(), where="post", ls="--", lw=1.4, color=colour, label=label)
        ax.set_xscale("log", base=2)
        ticks, labels = size_ticks([int(s) for s in cdf["size_bytes"]])
        rotate = len(ticks) > 9
        ax.set_xticks(ticks, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center")
        ax.minorticks_off()
        ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"message size (bytes, {placement})")
        ax.set_ylabel("bus bandwidth (GB/s)")
        title = redact(f"{collective}: bus bandwidth vs message size" + (f" — {cluster}" if cluster else ""))
        full = title_with_note(title, standin)
        ax.set_title(full, loc="left")
        ax.legend(loc="upper left", fontsize=9)
        drawn.append(Drawn("busbw_vs_size", f"busbw_{_safe_name(str(collective))}.png", title, full, fig))
    return drawn


def busbw_vs_size(network: pd.DataFrame, outdir: Path, standin: bool, cluster: str = "") -> list[Plot]:
    """Write one PNG per collective (see ``curve_figures``).

    Returns:
        The plots written, in collective order.
    """
    return [save(d, outdir) for d in curve_figures(network, standin, cluster)]


def _largest_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Per (collective, node set): the row at the largest message size measured."""
    idx = df.groupby(["collective", "node_set"])["size_bytes"].idxmax()
    return df.loc[idx.to_numpy()]


def node_set_figure(network: pd.DataFrame, standin: bool, all_nodes: list[str]) -> Drawn | None:
    """A horizontal bar per node set (a panel per collective): busbw at the largest size, bars below their
    threshold in red, the threshold as a black tick on each bar; ``None`` without rows."""
    placement = fmt.placement_for_plots(network)
    if placement is None:
        return None
    df = network[(network["placement"] == placement) & network["busbw_gbs"].notna() & network["size_bytes"].notna()]
    if df.empty:
        return None
    rows = _largest_rows(df)
    collectives = collective_order(rows["collective"].unique())
    counts = [int((rows["collective"] == c).sum()) for c in collectives]
    height = 1.2 + sum(0.9 + 0.32 * n for n in counts)
    # Constrained (not tight) layout: it makes room for the suptitle and for the legend below the panels.
    fig, axes = plt.subplots(
        len(collectives), 1, figsize=(9, height), layout="constrained", squeeze=False,
        gridspec_kw={"height_ratios": [max(n, 1) + 2 for n in counts]},
    )
    for ax, collective in zip(axes[:, 0], collectives, strict=True):
        # Bars are drawn bottom-up: the widest node set ends on top, the slowest pairs at the bottom.
        sub = rows[rows["collective"] == collective].sort_values(["n_nodes", "busbw_gbs"], ascending=[True, True])
        sizes = sub["size_bytes"].unique()
        labels = [
            redact(fmt.short_node_set(r.node_set, all_nodes) + ("" if len(sizes) == 1 else f" · {fmt.size(r.size_bytes)}"))
            for r in sub.itertuples()
        ]
        values = sub["busbw_gbs"].to_numpy(dtype=float)
        thr = sub["threshold_gbs"].to_numpy(dtype=float)
        colours = [
            NEUTRAL_COLOUR if np.isnan(t) else (FAIL_COLOUR if v < t or verdict == "fail" else PASS_COLOUR)
            for v, t, verdict in zip(values, thr, sub["verdict"], strict=True)
        ]
        y = np.arange(len(sub))
        ax.barh(y, values, color=colours, height=0.7)
        for yi, t in zip(y, thr, strict=True):
            if not np.isnan(t):
                ax.vlines(t, yi - 0.45, yi + 0.45, color=THRESHOLD_COLOUR, lw=2)
        top = float(np.nanmax(np.concatenate([values, thr]))) if len(values) else 1.0
        for yi, v in zip(y, values, strict=True):
            ax.text(v + top * 0.01, yi, fmt.gbs(v), va="center", fontsize=8.5)
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.6, len(sub) - 0.4)
        ax.set_xlim(0, top * 1.15 if top > 0 else 1)
        ax.grid(axis="y", visible=False)
        at = fmt.size(sizes[0]) if len(sizes) == 1 else "the largest size of each set"
        ax.set_title(redact(f"{collective} at {at} ({placement})"), loc="left", fontsize=10)
        ax.set_xlabel("bus bandwidth (GB/s)")
    handles = [
        Patch(color=PASS_COLOUR, label="meets threshold"),
        Patch(color=FAIL_COLOUR, label="below threshold"),
        Line2D([], [], color=THRESHOLD_COLOUR, lw=2, label="threshold"),
    ]
    if rows["threshold_gbs"].isna().any():
        handles.insert(2, Patch(color=NEUTRAL_COLOUR, label="no threshold"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9)
    title = "Large-message bus bandwidth per node set"
    full = title_with_note(title, standin)
    fig.suptitle(full, x=0.01, ha="left", fontsize=12)
    return Drawn("large_busbw_by_node_set", "large_busbw_by_node_set.png", title, full, fig)


def large_busbw_by_node_set(network: pd.DataFrame, outdir: Path, standin: bool, all_nodes: list[str]) -> list[Plot]:
    """Write the node-set bar chart (see ``node_set_figure``).

    Returns:
        The plot written, or nothing when there are no rows.
    """
    drawn = node_set_figure(network, standin, all_nodes)
    return [] if drawn is None else [save(drawn, outdir)]


def _text_colour(rgba: tuple[float, float, float, float]) -> str:
    r, g, b, _ = rgba
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def pair_figures(network: pd.DataFrame, standin: bool) -> list[Drawn]:
    """Per collective run on at least two distinct node pairs: a symmetric node×node grid of busbw at the
    largest size, red below the threshold and green above; untested pairs are blank."""
    placement = fmt.placement_for_plots(network)
    if placement is None:
        return []
    df = network[
        (network["placement"] == placement) & (network["n_nodes"] == 2) & network["busbw_gbs"].notna()
    ]
    drawn: list[Drawn] = []
    for collective, cdf in df.groupby("collective", sort=True):
        if cdf["node_set"].nunique() < 2:
            continue
        rows = _largest_rows(cdf)
        names = sorted({n for s in rows["node_set"] for n in fmt.nodes_of(s)})
        index = {n: i for i, n in enumerate(names)}
        grid = np.full((len(names), len(names)), np.nan)
        for r in rows.itertuples():
            pair = fmt.nodes_of(r.node_set)
            if len(pair) != 2:
                continue
            a, b = index[pair[0]], index[pair[1]]
            grid[a, b] = grid[b, a] = fmt.as_float(r.busbw_gbs)
        values = grid[~np.isnan(grid)]
        thr_values = rows["threshold_gbs"].dropna()
        thr = float(thr_values.max()) if not thr_values.empty else None
        lo, hi = float(values.min()), float(values.max())
        norm: Normalize
        if thr is not None and lo < thr < hi:
            norm = TwoSlopeNorm(vmin=lo, vcenter=thr, vmax=hi)
        elif thr is not None and hi <= thr:
            norm = Normalize(vmin=lo, vmax=thr * 1.5)  # everything below: all red-to-orange
        else:
            norm = Normalize(vmin=min(lo, thr if thr is not None else lo) * 0.5, vmax=hi if hi > lo else lo + 1)
        cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#F3F4F6")
        side = max(4.8, 0.62 * len(names) + 2.6)
        fig, ax = plt.subplots(figsize=(side + 1.2, side), layout=LAYOUT)
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm)
        for i in range(len(names)):
            for j in range(len(names)):
                v = grid[i, j]
                if np.isnan(v):
                    ax.text(j, i, "–" if i != j else "", ha="center", va="center", color="#9CA3AF", fontsize=9)
                else:
                    ax.text(j, i, fmt.gbs(v), ha="center", va="center", fontsize=9, color=_text_colour(cmap(norm(v))))
        ax.set_xticks(range(len(names)), [redact(n) for n in names], rotation=45, ha="right")
        ax.set_yticks(range(len(names)), [redact(n) for n in names])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        sizes = rows["size_bytes"].unique()
        at = fmt.size(sizes[0]) if len(sizes) == 1 else "the largest size"
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.set_label(f"bus bandwidth at {at} (GB/s)")
        if thr is not None:
            bar.ax.axhline(thr, color=THRESHOLD_COLOUR, lw=2)
        title = redact(f"{collective}: node pairs at {at} ({placement})")
        full = title_with_note(title, standin)
        ax.set_title(full, loc="left")
        drawn.append(Drawn("pair_heatmap", f"pairs_{_safe_name(str(collective))}.png", title, full, fig))
    return drawn


def pair_heatmaps(network: pd.DataFrame, outdir: Path, standin: bool) -> list[Plot]:
    """Write one heat map PNG per collective with pairs (see ``pair_figures``).

    Returns:
        The plots written (none when no pairs were tested).
    """
    return [save(d, outdir) for d in pair_figures(network, standin)]


def draw_all(network: pd.DataFrame, outdir: Path, standin: bool, cluster: str, all_nodes: list[str]) -> list[Plot]:
    """Draw every report figure into ``outdir`` (the run's ``plots/``), replacing old PNGs there.

    Returns:
        The plots in page order: per-collective curves, the node-set bars, the pair heat maps.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob("*.png"):
        old.unlink()
    return (
        busbw_vs_size(network, outdir, standin, cluster)
        + large_busbw_by_node_set(network, outdir, standin, all_nodes)
        + pair_heatmaps(network, outdir, standin)
    )
