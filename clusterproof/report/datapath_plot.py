"""The data-path figure: aggregate GB/s against object size for PUT and GET, one line per issuer, client set
(head or N nodes) and concurrency, from the ``<run>/datapath/*.csv`` rows the storage suite writes. The title says
where the numbers come from (in the sandbox: a memstore RGW on one machine)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from clusterproof.report.plots import (  # plots sets the Agg backend first
    PALETTE,
    Drawn,
    Plot,
    save,
    size_ticks,
)


def read_rows(outdir: Path) -> pd.DataFrame:
    """Every data-path row of the run (empty when the data-path tests did not run)."""
    files = sorted((Path(outdir) / "datapath").glob("*.csv"))
    frames = [pd.read_csv(f) for f in files if f.stat().st_size]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure(rows: pd.DataFrame) -> Drawn | None:
    data = rows[rows["op"].isin(["put", "get"]) & rows["gbs"].notna()] if len(rows) else rows
    if not len(data):
        return None
    sources = sorted({str(s) for s in data["source"].dropna()})
    title = "Data path through temporary credentials: GB/s against object size"
    full = title + ("\n" + "; ".join(sources) if sources else "")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="tight")
    for ax, op in zip(axes, ("put", "get"), strict=True):
        part = data[data["op"] == op]
        issuers = sorted({str(i) for i in data["issuer"]})
        concs = sorted({int(c) for c in data["concurrency"]})
        for (issuer, clients, conc), g in part.groupby(["issuer", "clients", "concurrency"]):
            g = g.sort_values("size_bytes")
            # colour: issuer; line: head (solid) or every node (dashed); marker: concurrency
            ax.plot(g["size_bytes"], g["gbs"], color=PALETTE[issuers.index(str(issuer)) % len(PALETTE)],
                    marker="osD^v<>"[concs.index(int(str(conc))) % 7], linestyle="-" if clients == "head" else "--",
                    label=f"{issuer} {clients} x{conc}")
        ax.set_xscale("log", base=2)
        ticks, labels = size_ticks(sorted({int(str(s)) for s in data["size_bytes"]}))
        ax.set_xticks(ticks, labels)
        ax.set_title(op.upper())
        ax.set_xlabel("object size")
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_ylabel("GB/s (all clients together)")
    fig.suptitle(full, fontsize=10)
    return Drawn("datapath", "datapath_gbs_vs_size.png", title, full, fig)


def datapath_plots(outdir: Path) -> list[Plot]:
    """The data-path plot under ``<outdir>/plots`` when the run has data-path rows; none otherwise."""
    drawn = figure(read_rows(outdir))
    return [save(drawn, Path(outdir) / "plots")] if drawn is not None else []
