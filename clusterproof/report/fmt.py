"""Small formatting helpers shared by the scorecard, the baseline comparison, the plots and the pages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from clusterproof.units import human_size

OUT_OF_PLACE = "out-of-place"


def gbs(value: Any) -> str:
    """Bus bandwidth for people: ``351.2`` above 100 GB/s, ``0.91`` below; ``n/a`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "n/a"
    v = float(value)
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}"


def pct(value: float) -> str:
    """``-7.6%``; ``5`` rather than ``5.0`` for whole numbers (tolerances)."""
    return f"{value:+.1f}%" if value != int(value) else f"{int(value):+d}%"


def size(value: Any) -> str:
    """Bytes as the human size nccl-tests users write (``8G``), ``?`` when unknown."""
    try:
        return human_size(int(value))
    except (TypeError, ValueError):
        return "?"


def nodes_of(node_set: Any) -> list[str]:
    """``"node01,node02"`` -> ``["node01", "node02"]``; anything else -> ``[]``."""
    if not isinstance(node_set, str) or not node_set:
        return []
    return [n.strip() for n in node_set.split(",") if n.strip()]


def short_node_set(node_set: Any, all_nodes: Sequence[str] = ()) -> str:
    """A node set short enough for an axis label: ``all 8 nodes``, ``node01,node02`` or
    ``node01…node06 (6)``."""
    names = nodes_of(node_set)
    if not names:
        return str(node_set)
    if len(names) > 2 and all_nodes and set(names) == set(all_nodes):
        return f"all {len(names)} nodes"
    if len(names) <= 3:
        return ",".join(names)
    return f"{names[0]}…{names[-1]} ({len(names)})"


def placement_for_plots(df: pd.DataFrame) -> str | None:
    """The placement the plots and summaries use: out-of-place when measured, else whatever was."""
    if df.empty:
        return None
    placements = df["placement"].dropna().unique().tolist()
    if OUT_OF_PLACE in placements:
        return OUT_OF_PLACE
    return str(placements[0]) if placements else None


def md_cell(text: Any) -> str:
    """A value safe inside a Markdown table cell (no pipes or newlines)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def as_int(value: Any) -> int:
    """``int(value)`` for pandas scalars, whose static types are too wide for ``int()``."""
    return int(value)


def as_float(value: Any) -> float:
    """``float(value)`` for pandas scalars (NA becomes NaN)."""
    if value is None or value is pd.NA:
        return math.nan
    return float(value)


def number(value: Any) -> str:
    """A table cell for a number: integers as they are, floats to 4 significant digits without exponent
    noise (``-0.0002937``, ``23.54``); empty for NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    text = f"{value:.4g}"
    return f"{value:.8f}".rstrip("0").rstrip(".") if "e" in text else text
