"""The shared model of an nccl-tests run: ``NcclRun``, its fixed result/device frames and the busbw maths.

Both readers build on this module: ``clusterproof.network.nccl_text`` (text logs) and ``clusterproof.network.nccl_json``
(``-J`` reports). It imports neither, so they can import it without a cycle; ``clusterproof.network.nccl`` is the
public face that re-exports all three.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PLACEMENTS: tuple[str, str] = ("out-of-place", "in-place")
RESULT_COLUMNS: tuple[str, ...] = (
    "size_bytes",  # int64: bytes per rank as nccl-tests prints them
    "count",  # int64: elements
    "dtype",  # str: float, int8, bfloat16, ...
    "redop",  # str: sum, prod, max, min, avg, mulsum, or "none"
    "root",  # int64: -1 for collectives without a root
    "placement",  # "out-of-place" | "in-place"
    "time_us",  # float64: time (or CPU time with -C) per operation
    "algbw_gbs",  # float64: algorithm bandwidth, GB/s (1 GB = 1e9 B)
    "busbw_gbs",  # float64: bus bandwidth, GB/s
    "wrong",  # Int64: wrong elements; NA when not validated or when the old ``error`` column was printed
)
DEVICE_COLUMNS: tuple[str, ...] = ("rank", "group", "pid", "host", "device", "bus_id", "gpu_name")

# busbw = algbw * factor(n), from the *GetBw functions in nccl-tests src/<collective>.cu (§1.5).
_BUSBW_FACTORS: dict[str, Callable[[int], float]] = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "alltoall": lambda n: (n - 1) / n,
    "alltoallv": lambda n: (n - 1) / n,
    "gather": lambda n: (n - 1) / n,
    "scatter": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "sendrecv": lambda n: 1.0,
    "hypercube": lambda n: 1.0,
}
# Longest names first so "all_reduce" wins over "reduce" and "alltoallv" over "alltoall".
KNOWN_BINARY = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-Za-z0-9]+_)*?("
    + "|".join(sorted(_BUSBW_FACTORS, key=len, reverse=True))
    + r")_perf(?![A-Za-z0-9])"
)
_ANY_BINARY = re.compile(r"([A-Za-z][A-Za-z0-9_]*?)_perf(?:_mpi)?(?:\.exe)?$")

# Printed values carry 2 decimals (or fewer significant digits for big numbers since 2.17.3), so a
# printed busbw can differ from printed algbw * factor by rounding only.
_BUSBW_ABS_TOL = 0.02
_BUSBW_REL_TOL = 0.02
_MAX_BUSBW_MESSAGES = 20


# What launchers add to every line of output. Open MPI --tag-output ("[1,0]<stdout>:", optionally after a ctime()
# from --timestamp-output, with a non-numeric job id under PRRTE, or with a "[host:pid]" part) re-tags at
# read-chunk boundaries, so a tag can also sit inside a line: those are removed wherever they are, and nothing
# else, so the two halves of a row join up again. srun -l ("12: ") and a bare "[N] " only lead a line.
_OMPI_TAG = (
    r"(?:[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})?"
    r"\[[^\[\],\s]+(?:,\d+)?\](?:\[[^\]\s]*\])?<std(?:out|err|diag)>:"
)
_LEADING_TAG = re.compile(rf"^(?:{_OMPI_TAG} ?|\s*\d+: |\[\d+\]:? ?)")
_ANY_OMPI_TAG = re.compile(_OMPI_TAG)


#: What no tool prints: bytes that were no UTF-8 (read with ``errors="replace"``) and control characters other than
#: tab and carriage return. A line holding one cannot be read as printed, so no reader takes a value from it.
UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def launcher_tag(line: str) -> str:
    """The tag a launcher put at the start of ``line``, exactly as printed (``"[1,0]<stdout>:"``, ``"12: "``), or
    ``""``: it names the stream (one process's stdout or stderr) the line came from, and ``line[len(tag):]`` is
    what the process printed."""
    m = _LEADING_TAG.match(line)
    if not m:
        return ""
    tag = m.group(0)
    return tag.rstrip(" ") if "<std" in tag else tag  # Open MPI adds no space after its tag


def strip_inner_tags(text: str) -> str:
    """``text`` without Open MPI tags that sit inside it (re-tagging at read-chunk boundaries)."""
    return _ANY_OMPI_TAG.sub("", text) if "<std" in text else text


def strip_launcher_tags(line: str) -> str:
    """``line`` without the prefixes and tags mpirun/srun add (see above); other text is left as it is."""
    line = _LEADING_TAG.sub("", line, count=1)
    return _ANY_OMPI_TAG.sub("", line) if "<std" in line else line


#: Collectives whose per-rank element count is ``count / nranks``: nccl-tests rounds the size it prints down to a
#: multiple of nranks elements (``src/<coll>.cu`` ``*GetCollByteCount``).
_SPLIT_BY_RANKS = frozenset({"all_gather", "reduce_scatter", "alltoall", "alltoallv", "gather", "scatter"})


def printed_size(collective: str, requested_bytes: int, nranks: int, type_size: int = 4) -> int:
    """The ``size`` column nccl-tests prints for a requested ``-b``/``-e`` size.

    ``all_gather_perf -b 64K`` on 3 ranks prints 65532, not 65536: the element count is split over the ranks and
    rounded down. Other collectives round to whole elements only.
    """
    count = requested_bytes // type_size
    name = collective.removesuffix("_perf")
    if name in _SPLIT_BY_RANKS and nranks > 0:
        count = (count // nranks) * nranks
    return count * type_size


def busbw_factor(collective: str, nranks: int) -> float:
    """Return the factor nccl-tests multiplies algbw by to print busbw, for ``nranks`` ranks.

    ``collective`` may be given with or without ``_perf`` (``"all_reduce"``, ``"all_reduce_perf"``).

    Raises:
        ValueError: the collective is unknown, or ``nranks`` is not a positive integer.
    """
    name = collective.strip().lower()
    if name.endswith("_perf"):
        name = name[: -len("_perf")]
    if name not in _BUSBW_FACTORS:
        known = ", ".join(sorted(_BUSBW_FACTORS))
        raise ValueError(f"unknown collective {collective!r}: no busbw formula (known: {known})")
    if isinstance(nranks, bool) or not isinstance(nranks, int) or nranks < 1:
        raise ValueError(f"nranks must be a positive integer, got {nranks!r}")
    return _BUSBW_FACTORS[name](nranks)


def collective_name(binary: str) -> str | None:
    """Return the collective a binary name or path runs (``/opt/build/all_reduce_perf`` -> ``"all_reduce"``).

    Returns None when the name does not end in ``_perf`` (nor contains a known ``<collective>_perf``).
    """
    base = binary.strip().replace("\\", "/").rsplit("/", 1)[-1]
    known = KNOWN_BINARY.search(base)
    if known:
        return known.group(1)
    other = _ANY_BINARY.search(base)
    return other.group(1) if other else None


def decode_nccl_version_code(code: int) -> str:
    """Return ``"2.28.3"`` for NCCL's version code ``22803`` (``"2.7.8"`` for the pre-2.9 form ``2708``)."""
    if code >= 10000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


_RESULT_DTYPES: dict[str, str | type] = {
    "size_bytes": "int64", "count": "int64", "dtype": str, "redop": str, "root": "int64", "placement": str,
    "time_us": "float64", "algbw_gbs": "float64", "busbw_gbs": "float64", "wrong": "Int64",
}  # fmt: skip
_DEVICE_DTYPES: dict[str, str | type] = {
    "rank": "int64", "group": "Int64", "pid": "int64", "host": str, "device": "int64", "bus_id": str,
    "gpu_name": str,
}  # fmt: skip


def results_frame(columns: dict[str, list[object]]) -> pd.DataFrame:
    """Return the results DataFrame (exactly RESULT_COLUMNS, documented dtypes) from one list per column."""
    return pd.DataFrame({k: pd.Series(columns[k], dtype=d) for k, d in _RESULT_DTYPES.items()})


def empty_results() -> pd.DataFrame:
    """Return a results table with the documented columns and dtypes and no rows."""
    return results_frame({name: [] for name in RESULT_COLUMNS})


def devices_frame(rows: Sequence[tuple[int, int | None, int, str, int, str, str]]) -> pd.DataFrame:
    """Return the devices DataFrame, sorted by rank, from (rank, group, pid, host, device, bus_id, gpu_name)
    tuples. ``group`` is None (NA) for logs older than nccl-tests 2.13.4."""
    cols = list(zip(*sorted(rows, key=lambda r: r[0]), strict=True)) if rows else [()] * len(DEVICE_COLUMNS)
    return pd.DataFrame(
        {k: pd.Series(list(c), dtype=d) for (k, d), c in zip(_DEVICE_DTYPES.items(), cols, strict=True)}
    )


def empty_devices() -> pd.DataFrame:
    """Return a devices table with the documented columns and dtypes and no rows."""
    return devices_frame([])


@dataclass
class NcclRun:
    """One nccl-tests run as read from its output.

    On construction the run checks every printed busbw against algbw x ``busbw_factor(collective, n)``
    and appends one message per mismatch to ``errors`` (a mismatch means a row or the rank count was
    misread). ``n`` is the rank count, or the group size when ``NCCL_TESTS_SPLIT`` made several groups.
    """

    results: pd.DataFrame = field(default_factory=empty_results)
    collective: str | None = None
    version: str | None = None
    nccl_version: str | None = None
    nranks: int = 0
    hosts: list[str] = field(default_factory=list)
    devices: pd.DataFrame = field(default_factory=empty_devices)
    avg_busbw_gbs: float | None = None
    out_of_bounds: int | None = None
    errors: list[str] = field(default_factory=list)
    complete: bool = False
    header: dict[str, int | str] = field(default_factory=dict)
    standin: bool = False

    def __post_init__(self) -> None:
        for message in self.busbw_mismatches():
            if message not in self.errors:
                self.errors.append(message)

    def ranks_per_group(self) -> int:
        """Return the rank count busbw was computed with: ``nranks``, or the size of rank 0's group when
        ``NCCL_TESTS_SPLIT`` split the ranks into several groups ("reported bandwidth is per group")."""
        groups = self.devices["group"].dropna() if "group" in self.devices else pd.Series(dtype="Int64")
        if groups.nunique() > 1:
            return int((groups == groups.iloc[0]).sum())
        return self.nranks

    def busbw_mismatches(self) -> list[str]:
        """Return one message per row whose busbw is not algbw x busbw_factor (within print rounding).

        Returns an empty list when the collective or the rank count is unknown; rows with algbw 0 are
        skipped (too small to check).
        """
        n = self.ranks_per_group()
        if self.collective is None or n < 1 or self.results.empty:
            return []
        try:
            factor = busbw_factor(self.collective, n)
        except ValueError:
            return []
        alg = self.results["algbw_gbs"].to_numpy(dtype="float64")
        bus = self.results["busbw_gbs"].to_numpy(dtype="float64")
        expected = alg * factor
        tolerance = np.maximum(_BUSBW_ABS_TOL, _BUSBW_REL_TOL * np.abs(expected))
        with np.errstate(invalid="ignore"):
            bad = (alg != 0) & np.isfinite(alg) & np.isfinite(bus) & (np.abs(bus - expected) > tolerance)
        messages = []
        for i in np.flatnonzero(bad)[:_MAX_BUSBW_MESSAGES]:
            row = self.results.iloc[int(i)]
            messages.append(
                f"busbw mismatch at {row['size_bytes']} B {row['placement']} ({row['dtype']} {row['redop']}): "
                f"printed busbw {bus[i]:.2f} GB/s but algbw {alg[i]:.2f} x {factor:.4g} "
                f"({self.collective}, {n} ranks) = {expected[i]:.2f} GB/s; the row or the rank count was misread"
            )
        extra = int(bad.sum()) - len(messages)
        if extra > 0:
            messages.append(f"busbw mismatch in {extra} more rows (not listed)")
        return messages

    def wrong_total(self) -> int:
        """Return the sum of ``wrong`` over all rows (NA rows count as 0)."""
        return int(self.results["wrong"].sum(skipna=True))

    def sizes(self) -> list[int]:
        """Return the distinct message sizes in bytes, ascending."""
        return sorted(int(s) for s in self.results["size_bytes"].unique())

    def row(self, size_bytes: int, placement: str) -> pd.Series:
        """Return the one results row for ``size_bytes`` and ``placement``.

        Raises:
            ValueError: ``placement`` is not "out-of-place"/"in-place", or several rows match (the run
                swept several data types, ops or cycles: filter ``results`` yourself).
            KeyError: no row matches.
        """
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        df = self.results
        match = df[(df["size_bytes"] == size_bytes) & (df["placement"] == placement)]
        if match.empty:
            raise KeyError(f"no {placement} row for {size_bytes} B (sizes in this run: {self.sizes()})")
        if len(match) > 1:
            raise ValueError(
                f"{len(match)} {placement} rows for {size_bytes} B (several data types, ops or cycles); "
                "filter NcclRun.results instead"
            )
        return match.iloc[0]
