"""References from healthy runs: per collective, node count and message size, the median bus bandwidth of one
or more saved runs and a robust lower bound (median less k median absolute deviations), written in the
inventory's threshold format, read back and validated, and compared with every row of a new run.

``clusterproof calibrate reports/<run> [...] > references.yaml`` is :func:`calibrate` + :func:`render`.
A reference file looks like this (``thresholds`` is exactly the inventory's ``thresholds`` section, so the lower
bounds can also be pasted there)::

    # clusterproof calibrate: 2 runs, k = 3, min band 10%, floor 0 GB/s
    #   reports/20261201T2200Z-ab12 (cluster sandbox, CPU stand-in)
    fabric_class: {name: sandbox-standin, fabric: roce, gpu_model: CPU stand-in, nic_gbps: 100}
    standin: true
    reference:            # median busbw (GB/s)
      all_reduce: {4: {64K: 0.21, 1M: 0.42}}
    thresholds:           # lower bound (GB/s)
      all_reduce: {4: {64K: 0.17, 1M: 0.36}}

Pure except :func:`read_runs` and :func:`load_reference_file`, which read files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
import yaml

from clusterproof.errors import ClusterproofError, InventoryError
from clusterproof.fields import FieldReader
from clusterproof.findings import Criterion, Finding, Subject, failed, not_tested, passed
from clusterproof.network.nccl_model import busbw_factor
from clusterproof.thresholds import read_thresholds
from clusterproof.units import human_size

FABRICS = ("roce", "ib")
#: Three significant decimals keep a CPU stand-in's 0.2 GB/s and a GPU's 380 GB/s both readable.
_DIGITS = 4


# ------------------------------------------------------------------------------------------ robust statistics


def median(values: Sequence[float]) -> float:
    """The median of ``values``. Raises ValueError when there are none."""
    if not values:
        raise ValueError("median of no values")
    s = sorted(float(v) for v in values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2.0


def mad(values: Sequence[float]) -> float:
    """The median absolute deviation from the median (unscaled). Raises ValueError when there are none."""
    m = median(values)
    return median([abs(float(v) - m) for v in values])


def lower_bound(values: Sequence[float], k: float, min_band_pct: float = 0.0, floor_gbs: float = 0.0) -> float:
    """``median - k * MAD``, but at least ``min_band_pct`` percent below the median (two near-identical runs
    give a MAD near zero, and a band that narrow fails the next healthy run) and never below ``floor_gbs``."""
    m = median(values)
    bound = min(m - k * mad(values), m * (1.0 - min_band_pct / 100.0))
    return max(bound, floor_gbs, 0.0)


def measured_busbw(rows: pd.DataFrame) -> pd.Series:
    """busbw recomputed from each row's time (size / time x nccl-tests' bus factor for its ranks), which keeps the
    precision the printed two decimals lose at low bandwidths (0.05 vs 0.02 GB/s is 60% or 50% by rounding alone);
    the printed busbw where the time or rank count is missing."""
    printed = pd.to_numeric(rows["busbw_gbs"], errors="coerce").astype("float64")
    if not {"time_us", "size_bytes", "n_ranks", "collective"} <= set(rows.columns):
        return printed
    out = printed.copy()
    for i, (coll, ranks, size, t) in enumerate(zip(rows["collective"], rows["n_ranks"], rows["size_bytes"], rows["time_us"], strict=True)):
        try:
            if pd.isna(ranks) or pd.isna(t) or float(t) <= 0 or pd.isna(size):
                continue
            out.iloc[i] = float(size) / (float(t) * 1e3) * busbw_factor(str(coll), int(ranks))
        except (ValueError, TypeError):
            continue
    return out


# ------------------------------------------------------------------------------------------ the references


@dataclass(frozen=True)
class FabricClass:
    """Which fabric a reference file is for: references from one class say nothing about another."""

    name: str
    fabric: str | None = None  # roce | ib
    gpu_model: str | None = None
    nic_gbps: float | None = None

    def describe(self) -> str:
        parts = [p for p in (self.fabric and self.fabric.upper(), self.gpu_model,
                             f"{self.nic_gbps:g}G NICs" if self.nic_gbps else None) if p]
        return f"{self.name} ({', '.join(parts)})" if parts else self.name


@dataclass(frozen=True)
class RefKey:
    collective: str
    n_nodes: int
    size_bytes: int


@dataclass(frozen=True)
class RefEntry:
    reference_gbs: float  # median busbw
    lower_gbs: float  # the band's lower bound
    samples: int = 0


@dataclass(frozen=True)
class References:
    """A set of references for one fabric class; ``source`` is the file (or the runs) it came from."""

    fabric_class: FabricClass
    entries: Mapping[RefKey, RefEntry] = field(default_factory=dict)
    source: str = "<memory>"
    standin: bool = False
    runs: tuple[str, ...] = ()

    def lookup(self, collective: str, n_nodes: int, size_bytes: int) -> RefEntry | None:
        return self.entries.get(RefKey(collective, int(n_nodes), int(size_bytes)))


def read_runs(run_dirs: Sequence[Path]) -> list[tuple[str, pd.DataFrame]]:
    """``(run dir, network table)`` of each saved run (``results.parquet``).

    Raises:
        ClusterproofError: a directory has no ``results.parquet`` or it cannot be read (names the path).
    """
    out = []
    for d in run_dirs:
        path = Path(d) / "results.parquet" if Path(d).is_dir() else Path(d)
        try:
            out.append((str(d), pd.read_parquet(path)))
        except (OSError, ValueError) as e:
            raise ClusterproofError(f"{path}: cannot read the saved results ({e})") from None
    return out


def _healthy(df: pd.DataFrame) -> pd.DataFrame:
    """Rows a reference may learn from: validated or not, never a row with wrong results; soak rows excluded."""
    need = {"collective", "n_nodes", "size_bytes", "busbw_gbs"}
    missing = need - set(df.columns)
    if missing:
        raise ClusterproofError(f"results table lacks column(s) {', '.join(sorted(missing))}")
    rows = df.dropna(subset=sorted(need))
    if "wrong" in rows.columns:
        rows = rows[rows["wrong"].fillna(0).astype("int64") == 0]
    rows = rows.assign(busbw_gbs=measured_busbw(rows))
    return rows[rows["busbw_gbs"] > 0]


def calibrate(runs: Sequence[tuple[str, pd.DataFrame]], fabric_class: FabricClass, *, k: float = 3.0,
              min_band_pct: float = 10.0, floor_gbs: float = 0.0) -> References:
    """References from saved runs: per (collective, node count, size) the median busbw over every run, node
    set and placement, and the lower bound :func:`lower_bound`.

    Raises:
        ClusterproofError: no run, or no usable row in any of them.
    """
    if not runs:
        raise ClusterproofError("calibrate: no run given")
    frames = [_healthy(df) for _, df in runs]
    all_rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if all_rows.empty:
        raise ClusterproofError("calibrate: no healthy row (busbw > 0, #wrong 0) in " + ", ".join(n for n, _ in runs))
    entries: dict[RefKey, RefEntry] = {}
    for key, g in all_rows.groupby(["collective", "n_nodes", "size_bytes"], sort=True):
        coll, n, size = cast(tuple[Any, Any, Any], key)
        values = [float(v) for v in g["busbw_gbs"]]
        entries[RefKey(str(coll), int(n), int(size))] = RefEntry(
            round(median(values), _DIGITS), round(lower_bound(values, k, min_band_pct, floor_gbs), _DIGITS), len(values))
    standin = bool("standin" in all_rows.columns and all_rows["standin"].fillna(False).astype(bool).any())
    return References(fabric_class, entries, source="calibrate", standin=standin, runs=tuple(n for n, _ in runs))


def _table(refs: References, attr: str) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {}
    for key in sorted(refs.entries, key=lambda k: (k.collective, k.n_nodes, k.size_bytes)):
        out.setdefault(key.collective, {}).setdefault(key.n_nodes, {})[human_size(key.size_bytes)] = getattr(refs.entries[key], attr)
    return out


def render(refs: References, *, k: float, min_band_pct: float, floor_gbs: float, run_notes: Sequence[str] = ()) -> str:
    """The reference file as YAML text, its source runs and options as a comment at the top."""
    fc = refs.fabric_class
    head = [f"# clusterproof calibrate: references from {len(refs.runs)} run(s); k = {k:g}, min band {min_band_pct:g}%, "
            f"floor {floor_gbs:g} GB/s",
            "# reference = median busbw over the runs (every node set and placement); "
            "thresholds = max(floor, min(median - k*MAD, median*(1 - band)))"]
    head += [f"#   {n}" for n in (run_notes or refs.runs)]
    if refs.standin:
        head.append("# numbers from the CPU stand-in for nccl-tests (sandbox), not from GPUs")
    doc: dict[str, Any] = {
        "fabric_class": {k_: v for k_, v in (("name", fc.name), ("fabric", fc.fabric), ("gpu_model", fc.gpu_model),
                                             ("nic_gbps", fc.nic_gbps)) if v is not None},
        "standin": refs.standin,
        "reference": _table(refs, "reference_gbs"),
        "thresholds": _table(refs, "lower_gbs"),
        "samples": _table(refs, "samples"),
    }
    return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False)


# ------------------------------------------------------------------------------------------ reading a file


def _read_fabric_class(problems: list[str], raw: Any) -> FabricClass:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw.get("name"):
        problems.append("fabric_class: expected a mapping with at least a name")
        return FabricClass("?")
    unknown = set(raw) - {"name", "fabric", "gpu_model", "nic_gbps"}
    for key in sorted(unknown):
        problems.append(f"fabric_class.{key}: unknown key")
    fabric = raw.get("fabric")
    if fabric is not None and fabric not in FABRICS:
        problems.append(f"fabric_class.fabric: expected one of {', '.join(FABRICS)}, got {fabric!r}")
    nic = raw.get("nic_gbps")
    if nic is not None and (isinstance(nic, bool) or not isinstance(nic, int | float) or nic <= 0):
        problems.append(f"fabric_class.nic_gbps: expected a NIC rate in Gb/s (a number > 0), got {nic!r}")
        nic = None
    gpu = raw.get("gpu_model")
    return FabricClass(raw["name"], fabric, str(gpu) if gpu is not None else None, float(nic) if nic is not None else None)


def parse_reference_doc(data: Any, source: str) -> References:
    """Validate a parsed reference file. Raises InventoryError naming the file and every bad field."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise InventoryError(source, [f"expected a reference file (a mapping), got {type(data).__name__}"])
    for key in sorted(set(data) - {"fabric_class", "standin", "reference", "thresholds", "samples"}):
        problems.append(f"{key}: unknown key")
    fc = _read_fabric_class(problems, data.get("fabric_class"))
    r = FieldReader()
    ref = read_thresholds(r, data.get("reference"), "reference")
    low = read_thresholds(r, data.get("thresholds"), "thresholds")
    problems += r.problems
    entries: dict[RefKey, RefEntry] = {}
    for coll, per_count in low.table.items():
        for count, steps in per_count.items():
            for size, bound in steps.items():
                if count == "*":
                    problems.append(f"thresholds.{coll}.*: a reference is for one node count, not '*'")
                    continue
                median_v = ref.table.get(coll, {}).get(count, {}).get(size)
                if median_v is None:
                    problems.append(f"reference.{coll}.{count}.{human_size(size)}: missing (thresholds has it)")
                    continue
                if bound > median_v:
                    problems.append(f"thresholds.{coll}.{count}.{human_size(size)}: lower bound {bound:g} above the reference {median_v:g}")
                entries[RefKey(coll, int(count), size)] = RefEntry(median_v, bound)
    standin = data.get("standin", False)
    if not isinstance(standin, bool):
        problems.append(f"standin: expected true or false, got {standin!r}")
    if not entries and not problems:
        problems.append("thresholds: no reference in the file")
    if problems:
        raise InventoryError(source, problems)
    return References(fc, entries, source=source, standin=bool(standin))


def load_reference_file(path: Path) -> References:
    """Read and validate one reference file. Raises InventoryError naming the file and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(str(path), [f"cannot read the reference file: {e.strerror or e}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InventoryError(str(path), [f"not valid YAML ({getattr(e, 'problem', e)})"]) from None
    return parse_reference_doc(data, str(path))


# ------------------------------------------------------------------------------------------ comparing a run


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['collective']} {int(row['n_nodes'])} nodes {human_size(int(row['size_bytes']))} {row.get('placement') or ''}".strip()


def compare_rows(rows: pd.DataFrame, refs: References) -> pd.DataFrame:
    """``rows`` plus ``reference_gbs``, ``reference_lower_gbs`` and ``pct_of_reference`` (NaN where the file has
    no reference for the row)."""
    out = rows.copy()
    out["busbw_gbs"] = measured_busbw(rows)
    found = [refs.lookup(str(c), int(n), int(z)) for c, n, z in zip(rows["collective"], rows["n_nodes"], rows["size_bytes"], strict=True)]
    out["reference_gbs"] = [e.reference_gbs if e else math.nan for e in found]
    out["reference_lower_gbs"] = [e.lower_gbs if e else math.nan for e in found]
    out["pct_of_reference"] = out["busbw_gbs"] / out["reference_gbs"] * 100.0
    return out


def check_reference(rows: pd.DataFrame, refs: References | None, subject: Subject | None = None) -> list[Finding]:
    """One REFERENCE finding per row: pass within the band (busbw >= lower bound), fail below it, each saying
    how far the row is from its reference and which file the reference came from; not tested when there is no
    reference file or no reference for the row."""
    subj = subject or Subject("run", "run")
    if refs is None:
        return [not_tested(Criterion.REFERENCE, subj, "no reference file for this cluster's fabric class "
                           "(inventory references:; write one with `clusterproof calibrate`)")]
    where = f"{refs.source}, class {refs.fabric_class.name}" + (", CPU stand-in" if refs.standin else "")
    out: list[Finding] = []
    for rec in cast(list[dict[str, Any]], compare_rows(rows, refs).to_dict("records")):
        label = _label(rec)
        row_subject = subject or Subject("node_set", str(rec.get("node_set") or "run"))
        if math.isnan(rec["reference_gbs"]):
            out.append(not_tested(Criterion.REFERENCE, row_subject, f"{label}: no reference in {refs.source}"))
            continue
        values = {"busbw_gbs": float(rec["busbw_gbs"]), "reference_gbs": rec["reference_gbs"],
                  "reference_lower_gbs": rec["reference_lower_gbs"], "pct_of_reference": round(float(rec["pct_of_reference"]), 1),
                  "reference_file": refs.source, "collective": rec["collective"], "n_nodes": int(rec["n_nodes"]),
                  "size_bytes": int(rec["size_bytes"]), "placement": rec.get("placement")}
        text = (f"{label}: busbw {rec['busbw_gbs']:.4g} GB/s = {rec['pct_of_reference']:.0f}% of reference "
                f"{rec['reference_gbs']:.4g} GB/s (band >= {rec['reference_lower_gbs']:.4g}; {where})")
        if rec["busbw_gbs"] < rec["reference_lower_gbs"]:
            out.append(failed(Criterion.REFERENCE, row_subject, text.replace(" = ", " below its band: ", 1), values=values))
        else:
            out.append(passed(Criterion.REFERENCE, row_subject, text, values=values))
    return out


def left_band(findings: Iterable[Finding]) -> list[Finding]:
    """The REFERENCE findings of a run that failed: rows that left their reference band (for the history)."""
    return [f for f in findings if f.criterion is Criterion.REFERENCE and f.failed]
