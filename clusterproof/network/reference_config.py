"""The inventory's ``references:`` and ``network_checks:`` sections, validated at load.

``references`` names one reference file per fabric class and which class this cluster is::

    references:
      class: ib-h100-400g                 # this cluster's class (default: the only file)
      files:
        ib-h100-400g: refs/ib-h100-400g.yaml   # written by `clusterproof calibrate` (relative to the inventory)
        roce-h100-400g: refs/roce-h100-400g.yaml

Every file is read and validated when the inventory is loaded (a missing file, a file whose ``fabric_class.name``
is not its key, or a broken threshold table is an error naming the file and field).

``network_checks`` holds the limits of the shape, outlier, line-rate and soak checks (see ``NetworkChecks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import InventoryError
from clusterproof.fields import FieldReader, as_int, as_name, as_number, as_size, as_text, one_of
from clusterproof.network.reference import References, load_reference_file


@dataclass(frozen=True)
class ReferenceSettings:
    """The reference files per fabric class (loaded) and this cluster's class."""

    cluster_class: str | None = None
    files: Mapping[str, References] = field(default_factory=dict)

    @property
    def active(self) -> References | None:
        """The references for this cluster's class, or None when the inventory names none."""
        if self.cluster_class is None:
            return None
        return self.files.get(self.cluster_class)


@dataclass(frozen=True)
class NetworkChecks:
    """Limits of the checks beyond the fixed thresholds; a limit left out (None) is not checked."""

    #: busbw may fall by at most this fraction (percent) from one size to the next larger one (None: not checked).
    max_dip_pct: float | None = None
    #: sizes up to this many bytes are latency sizes: their time must stay under ``latency_limit_us``.
    latency_max_bytes: int = 64 << 10
    latency_limit_us: float | None = None
    #: a multi-node busbw below this percentage of the fabric's line rate fails.
    min_line_rate_pct: float | None = None
    #: a node whose results are more than k MADs below the cluster median is an outlier ...
    outlier_k_mad: float = 3.0
    #: ... and at least this many percent below it (k MADs of a very quiet fabric are tiny).
    outlier_min_drop_pct: float = 10.0
    #: a soak cycle whose busbw falls this many percent below the first cycle's is a slowdown.
    soak_slowdown_pct: float = 25.0
    #: pair runs the outlier check launches itself, besides the partial runs the table has: none, ring (N runs:
    #: node01-node02 ... nodeN-node01) or all (N(N-1)/2 runs: every node in N-1 pairs, robust to a noisy run).
    outlier_pairs: str = "none"
    #: how many times each of those pairs runs (rounds over all pairs): a node's score is its best row, so a
    #: second round keeps one burst of load on a shared fabric from sinking a healthy node.
    outlier_pair_repeats: int = 1


_CHECK_KEYS = {"max_dip_pct", "latency_max_bytes", "latency_limit_us", "min_line_rate_pct", "outlier_k_mad",
               "outlier_min_drop_pct", "soak_slowdown_pct", "outlier_pairs",
               "outlier_pair_repeats"}


def _pct(v: Any, p: str) -> float:
    x = as_number(0.0)(v, p)
    if x >= 100:
        raise ValueError(f"must be below 100 (a percentage), got {v!r}")
    return x


def read_network_checks(r: FieldReader, raw: Any) -> NetworkChecks:
    p = "network_checks"
    m = r.mapping(raw, p, _CHECK_KEYS)
    d = NetworkChecks()
    min_lr = r.get(m, "min_line_rate_pct", p, as_number(0.0), None)
    if min_lr is not None and min_lr > 100:
        r.problem(f"{p}.min_line_rate_pct", f"must be at most 100, got {min_lr:g}")
    k = r.get(m, "outlier_k_mad", p, as_number(0.0), d.outlier_k_mad)
    if k <= 0:
        r.problem(f"{p}.outlier_k_mad", "must be > 0")
    return NetworkChecks(
        max_dip_pct=r.get(m, "max_dip_pct", p, _pct, None),
        latency_max_bytes=r.get(m, "latency_max_bytes", p, as_size, d.latency_max_bytes),
        latency_limit_us=r.get(m, "latency_limit_us", p, as_number(0.0), None),
        min_line_rate_pct=min_lr,
        outlier_k_mad=k,
        outlier_min_drop_pct=r.get(m, "outlier_min_drop_pct", p, _pct, d.outlier_min_drop_pct),
        soak_slowdown_pct=r.get(m, "soak_slowdown_pct", p, _pct, d.soak_slowdown_pct),
        outlier_pairs=r.get(m, "outlier_pairs", p, one_of("none", "ring", "all"), "none"),
        outlier_pair_repeats=r.get(m, "outlier_pair_repeats", p, as_int(1, 100), 1),
    )


def read_references(r: FieldReader, raw: Any, source: str) -> ReferenceSettings:
    """Validate the section and load every file it names (paths relative to the inventory file)."""
    if raw is None:
        return ReferenceSettings()
    p = "references"
    m = r.mapping(raw, p, {"class", "files"}, {"files"})
    files_raw = m.get("files")
    if files_raw is not None and (not isinstance(files_raw, dict) or not files_raw):
        r.problem(f"{p}.files", "expected a mapping of fabric class name to reference file")
        files_raw = {}
    base = Path(source).parent if source != "<memory>" else Path.cwd()
    files: dict[str, References] = {}
    for name, path_v in (files_raw or {}).items():
        fp = f"{p}.files.{name}"
        try:
            as_name(name, fp)
            path = Path(as_text(path_v, fp)).expanduser()
        except ValueError as e:
            r.problem(fp, str(e))
            continue
        path = path if path.is_absolute() else base / path
        try:
            refs = load_reference_file(path)
        except InventoryError as e:
            r.problems += [f"{fp}: {path}: {x}" for x in e.problems]
            continue
        if refs.fabric_class.name != name:
            r.problem(fp, f"{path} is for fabric class {refs.fabric_class.name!r}, not {name!r}")
            continue
        files[name] = refs
    cls = r.get(m, "class", p, as_name, None)
    if cls is None and files_raw and len(files_raw) == 1:
        cls = str(next(iter(files_raw)))
    if cls is not None and files_raw and cls not in files_raw:
        r.problem(f"{p}.class", f"{cls!r} has no file under references.files (known: {', '.join(map(str, files_raw))})")
    if cls is None and len(files_raw or {}) > 1:
        r.problem(f"{p}.class", "missing (several fabric classes are listed: say which one this cluster is)")
    return ReferenceSettings(cluster_class=cls, files=files)



