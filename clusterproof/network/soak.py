"""Soak: the sweep repeated with validation for a duration or a number of cycles, because intermittent faults
(a flaky link, a GPU that corrupts one reduction in a thousand) only show after many cycles.

:class:`SoakTracker` takes each cycle's result rows and keeps what a person watching wants: a progress line per
cycle (elapsed, cycles, worst busbw so far, first failure), the first wrong result and the first slowdown with
their cycle, node set and size, and the node to blame (the one node common to every run with wrong results;
single-node and pair runs in the cycle make it one node quickly). :func:`check_soak` turns it into findings
(``Criterion.SOAK``). Pure: rows in, lines and findings out; :func:`write_table` saves ``soak.csv`` for the plot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from clusterproof.findings import Criterion, Finding, Subject, failed, node_subject, passed
from clusterproof.network.reference import References, measured_busbw, median
from clusterproof.units import human_size

SOAK_FILE = "soak.csv"
#: The placement of the one row a run that printed no result adds (with wrong = 1): it counts as a failure.
NO_RESULT = "no-result"
SOAK_COLUMNS = ("cycle", "elapsed_s", "collective", "node_set", "n_nodes", "n_ranks", "size_bytes", "placement", "time_us",
                "busbw_gbs", "wrong", "log_path")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90`` / ``90s`` / ``15m`` / ``2h`` / ``1d`` -> seconds. Raises ValueError for anything else or zero."""
    m = _DURATION_RE.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"not a soak duration: {text!r} (expected e.g. 90s, 15m, 2h)")
    return float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]


def _fmt_duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@dataclass(frozen=True)
class SoakEvent:
    """The first wrong result or slowdown: where and when."""

    kind: str  # "wrong" | "slowdown"
    cycle: int
    elapsed_s: float
    collective: str
    node_set: str
    size_bytes: int
    placement: str
    detail: str
    log_path: str | None = None

    def describe(self) -> str:
        where = f"{self.collective} on {self.node_set} at {human_size(self.size_bytes)} {self.placement}"
        return f"cycle {self.cycle} ({_fmt_duration(self.elapsed_s)}): {where}: {self.detail}"


@dataclass
class SoakTracker:
    """Accumulates the cycles of one soak.

    A slowdown is judged per run (collective, node set, placement), not per row, since one row of a loaded
    machine can read a tenth of its neighbour: the run's level is the median over its sizes of busbw / baseline,
    the baseline being the reference (when ``references`` has one for the size) or the median of that row over
    the earlier cycles; a level ``slowdown_pct`` percent below 1 is a slowdown, named at its worst size.
    """

    slowdown_pct: float = 25.0
    references: References | None = None
    rows: list[dict[str, object]] = field(default_factory=list)
    cycles: int = 0
    elapsed_s: float = 0.0
    first_wrong: SoakEvent | None = None
    first_slowdown: SoakEvent | None = None
    wrong_runs: list[tuple[int, str]] = field(default_factory=list)  # (cycle, node set) of every run with #wrong
    _history: dict[tuple[str, str, int, str], list[float]] = field(default_factory=dict)

    def add_cycle(self, cycle: int, elapsed_s: float, rows: pd.DataFrame) -> None:
        """Add one cycle's rows (columns: collective, node_set, n_nodes, size_bytes, placement, time_us, busbw_gbs,
        wrong, optional log_path, n_ranks); busbw is recomputed from the time where it can be (measured_busbw)."""
        rows = rows.assign(busbw_gbs=measured_busbw(rows))
        self.cycles = max(self.cycles, cycle)
        self.elapsed_s = max(self.elapsed_s, elapsed_s)
        wrong_sets: set[str] = set()
        runs: dict[tuple[str, str, str], list[tuple[int, float, float | None, str, str | None]]] = {}
        for rec in rows.to_dict("records"):
            key = (str(rec["collective"]), str(rec["node_set"]), int(rec["size_bytes"]), str(rec["placement"]))
            wrong = rec.get("wrong")
            wrong_n = int(wrong) if wrong is not None and not pd.isna(wrong) else 0
            self.rows.append({"cycle": cycle, "elapsed_s": round(elapsed_s, 2), **{c: rec.get(c) for c in SOAK_COLUMNS[2:]}})
            log = str(rec["log_path"]) if rec.get("log_path") else None
            if wrong_n:
                wrong_sets.add(key[1])
                if self.first_wrong is None:
                    what = "the run produced no result (see its log)" if key[3] == NO_RESULT else f"#wrong = {wrong_n}"
                    self.first_wrong = SoakEvent("wrong", cycle, elapsed_s, *key, what, log)
            if key[3] == NO_RESULT:
                continue
            bw = float(rec["busbw_gbs"])
            base, against = self._baseline(key, int(rec["n_nodes"]))
            runs.setdefault((key[0], key[1], key[3]), []).append((key[2], bw, base, against, log))
            self._history.setdefault(key, []).append(bw)
        self.wrong_runs += [(cycle, s) for s in sorted(wrong_sets)]
        if self.first_slowdown is None:
            self._judge_slowdown(cycle, elapsed_s, runs)

    def _baseline(self, key: tuple[str, str, int, str], n_nodes: int) -> tuple[float | None, str]:
        if self.references is not None:
            ref = self.references.lookup(key[0], n_nodes, key[2])
            if ref is not None:
                return ref.reference_gbs, f"reference {ref.reference_gbs:.4g}"
        seen = self._history.get(key)
        if not seen:
            return None, ""
        base = median(seen)
        return base, f"median of earlier cycles {base:.4g}"

    def _judge_slowdown(self, cycle: int, elapsed_s: float,
                        runs: dict[tuple[str, str, str], list[tuple[int, float, float | None, str, str | None]]]) -> None:
        for (collective, node_set, placement), items in sorted(runs.items()):
            judged = [(size, bw / base, bw, against, log) for size, bw, base, against, log in items if base]
            if not judged:
                continue
            level = median([r for _, r, _, _, _ in judged])
            if level < 1.0 - self.slowdown_pct / 100.0:
                size, ratio, bw, against, log = min(judged, key=lambda j: j[1])
                self.first_slowdown = SoakEvent(
                    "slowdown", cycle, elapsed_s, collective, node_set, size, placement,
                    f"busbw {level * 100:.0f}% of its baseline over the run's sizes (limit {100 - self.slowdown_pct:g}%); "
                    f"worst here {bw:.4g} GB/s vs {against}", log)
                return

    @property
    def blamed_nodes(self) -> list[str]:
        """The nodes in every run that returned wrong results (one node once the runs disagree enough)."""
        if not self.wrong_runs:
            return []
        common = set(self.wrong_runs[0][1].split(","))
        for _, node_set in self.wrong_runs[1:]:
            common &= set(node_set.split(","))
        return sorted(common)

    def worst_busbw(self) -> tuple[float, str] | None:
        """The lowest busbw seen at the largest size of any run (the number a person watches)."""
        if not self.rows:
            return None
        df = pd.DataFrame(self.rows)
        multi = df[df["n_nodes"].astype(int) == df["n_nodes"].astype(int).max()]
        big = multi[multi["size_bytes"] == multi["size_bytes"].max()]
        i = big["busbw_gbs"].astype(float).idxmin()
        r = big.loc[i]
        return float(r["busbw_gbs"]), f"{r['collective']} {int(r['n_nodes'])} nodes {human_size(int(r['size_bytes']))}, cycle {int(r['cycle'])}"

    def progress_line(self) -> str:
        """``soak: 0m41s, 3 cycles, worst busbw 0.21 GB/s (...), first failure: none``."""
        worst = self.worst_busbw()
        worst_text = f"worst busbw {worst[0]:.4g} GB/s ({worst[1]})" if worst else "no busbw yet"
        first = min((e for e in (self.first_wrong, self.first_slowdown) if e), key=lambda e: e.cycle, default=None)
        blame = f"; suspect {', '.join(self.blamed_nodes)}" if self.first_wrong and len(self.blamed_nodes) <= 2 else ""
        return (f"soak: {_fmt_duration(self.elapsed_s)}, {self.cycles} cycle{'s' if self.cycles != 1 else ''}, "
                f"{worst_text}, first failure: {first.describe() if first else 'none'}{blame}")

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(SOAK_COLUMNS))


def check_soak(tracker: SoakTracker) -> list[Finding]:
    """SOAK findings: the first wrong result (cycle, node set, size) and the node to blame by name; the first
    slowdown; a pass for the soak when neither happened."""
    run = Subject("run", "soak")
    out: list[Finding] = []
    span = f"{tracker.cycles} cycles over {_fmt_duration(tracker.elapsed_s)}"
    if tracker.first_wrong is not None:
        e = tracker.first_wrong
        blamed = tracker.blamed_nodes
        cycles = sorted({c for c, _ in tracker.wrong_runs})
        values = {"cycle": e.cycle, "size_bytes": e.size_bytes, "node_set": e.node_set, "wrong_cycles": cycles,
                  "wrong_runs": len(tracker.wrong_runs), "cycles": tracker.cycles}
        out.append(failed(Criterion.SOAK, Subject("node_set", e.node_set),
                          f"first wrong result in {e.describe()}; wrong results in {len(tracker.wrong_runs)} run(s) "
                          f"in cycles {', '.join(map(str, cycles[:10]))}{' ...' if len(cycles) > 10 else ''} of {span}",
                          values=values))
        if len(blamed) == 1:
            node = blamed[0]
            first_alone = next(c for c, s in tracker.wrong_runs if node in s.split(","))
            out.append(failed(Criterion.SOAK, node_subject(node),
                              f"{node} returns wrong results now and then: it is in every one of the "
                              f"{len(tracker.wrong_runs)} run(s) with #wrong > 0 (first in cycle {first_alone}, "
                              f"{human_size(e.size_bytes)})", values={**values, "node": node}))
    if tracker.first_slowdown is not None:
        e = tracker.first_slowdown
        out.append(failed(Criterion.SOAK, Subject("node_set", e.node_set), f"first slowdown in {e.describe()}",
                          values={"cycle": e.cycle, "size_bytes": e.size_bytes, "node_set": e.node_set}))
    if not out:
        worst = tracker.worst_busbw()
        out.append(passed(Criterion.SOAK, run, f"{span}: no wrong result and no slowdown"
                          + (f"; worst busbw {worst[0]:.4g} GB/s ({worst[1]})" if worst else ""),
                          values={"cycles": tracker.cycles, "elapsed_s": round(tracker.elapsed_s, 1)}))
    return out


def write_table(tracker: SoakTracker, run_dir: Path) -> Path:
    """Save the soak's rows as ``<run_dir>/soak.csv`` (for the report's busbw-over-time plot)."""
    path = Path(run_dir) / SOAK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tracker.frame().to_csv(path, index=False)
    return path


def read_table(run_dir: Path) -> pd.DataFrame | None:
    """``soak.csv`` of a run, or None when the run had no soak (or the file is unreadable)."""
    path = Path(run_dir) / SOAK_FILE
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
