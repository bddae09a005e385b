"""Where each value sits in an nccl-tests result row: the layout read from the table's column header.

Rows are split on whitespace and mapped by the names in the header, never by position or width (shared notes,
network-anchors.md §1). Used by :mod:`clusterproof.network.nccl_text`.
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterproof.network.nccl_model import PLACEMENTS

_TIME_NAMES = frozenset({"time", "cputime"})
_WRONG_NAMES = frozenset({"#wrong", "error"})
# The modern column header, used only when rows appear before any column header (a log that starts
# mid-table).
DEFAULT_HEADER = "size count type redop root time algbw busbw #wrong time algbw busbw #wrong".split()


@dataclass(frozen=True)
class Columns:
    """Where each standard value sits in a whitespace-split row, read from the column header."""

    size: int
    count: int
    dtype: int
    redop: int | None
    root: int | None
    # Per placement (out-of-place first): (time, algbw, busbw, wrong or None, wrong-is-old-error-column).
    placements: tuple[tuple[int, int, int, int | None, bool], ...]
    needed: int  # tokens a row must have to hold every value above
    full: int  # tokens a whole row has (the -S timestamp is two tokens)
    # The same layout without the redop column: nccl-tests before 2.13 names "redop" in the alltoall header but
    # leaves it blank in every row (``%6s`` of ""), so those rows are one token short.
    blank_redop: Columns | None = None

    @classmethod
    def from_header(cls, names: list[str]) -> Columns | None:
        """Return the layout for header names like ``size count type redop root time ...``, or None when
        the names lack size/count/type or a time/algbw/busbw group."""
        if not {"size", "count", "type"} <= set(names):
            return None
        times = [i for i, n in enumerate(names) if n in _TIME_NAMES]
        algbws = [i for i, n in enumerate(names) if n == "algbw"]
        busbws = [i for i, n in enumerate(names) if n == "busbw"]
        wrongs = [i for i, n in enumerate(names) if n in _WRONG_NAMES]
        if not len(times) == len(algbws) == len(busbws) or len(wrongs) not in (0, len(times)):
            return None  # a placement without all of its columns: a header cut or torn in two
        groups = []
        for k in range(min(len(times), len(algbws), len(busbws), len(PLACEMENTS))):
            wrong = wrongs[k] if k < len(wrongs) else None
            old_error = wrong is not None and names[wrong] == "error"
            groups.append((times[k], algbws[k], busbws[k], wrong, old_error))
        if not groups:
            return None
        redop = names.index("redop") if "redop" in names else (names.index("op") if "op" in names else None)
        root = names.index("root") if "root" in names else None
        used = [names.index("size"), names.index("count"), names.index("type")]
        used += [i for i in (redop, root) if i is not None]
        used += [i for g in groups for i in g[:4] if i is not None]
        full = len(names) + (1 if "timestamp" in names else 0)
        blank = None
        if redop is not None:
            blank = cls.from_header(names[:redop] + names[redop + 1 :])
        return cls(
            size=names.index("size"),
            count=names.index("count"),
            dtype=names.index("type"),
            redop=redop,
            root=root,
            placements=tuple(groups),
            needed=max(used) + 1,
            full=full,
            blank_redop=blank,
        )

    def read_blank_redop(self, tokens: list[str]) -> list[tuple[tuple[object, ...], str]] | None:
        """Read a row that is exactly one token short, as printed with the header's redop column left blank.
        Only a whole row of the other columns qualifies (a row cut short does not, since its redop token
        would be read as a time and fail)."""
        alt = self.blank_redop
        if alt is None or len(tokens) != alt.full or alt.full != self.full - 1:
            return None
        return alt.read(tokens)

    def read(self, tokens: list[str]) -> list[tuple[tuple[object, ...], str]] | None:
        """Return one (results row, flagged error value or "") per placement, or None when a value does not
        parse. The old ``error`` column holds a float delta, not a count: its rows get ``wrong`` NA."""
        try:
            size, count = int(tokens[self.size]), int(tokens[self.count])
            # A type (float, int8, bfloat16) and an op (sum, mulsum, none) are names: a number there means the
            # tokens are not where the header says (a torn row joined wrongly, a blank column).
            if not tokens[self.dtype][:1].isalpha() or (self.redop is not None and not tokens[self.redop].isalpha()):
                return None
            # size is count x element size (x ranks for gather-like collectives): a row whose first digits were
            # torn off ("8589934592" read as "589934592") does not divide.
            if (size % count != 0) if count else size != 0:
                return None
            redop = tokens[self.redop] if self.redop is not None else "none"
            root = int(tokens[self.root]) if self.root is not None else -1
            rows: list[tuple[tuple[object, ...], str]] = []
            for placement, (t, a, b, w, old_error) in zip(PLACEMENTS, self.placements, strict=False):
                wrong = None
                if w is not None and tokens[w] != "N/A":
                    if old_error:
                        float(tokens[w].rstrip("*"))  # a max delta like 2e-07: must parse, but is no count
                    else:
                        wrong = int(float(tokens[w]))  # %6g prints 1e+06 for a million wrong elements
                flagged = tokens[w] if w is not None and old_error and tokens[w].endswith("*") else ""
                values = (size, count, tokens[self.dtype], redop, root, placement)
                rows.append((values + (float(tokens[t]), float(tokens[a]), float(tokens[b]), wrong), flagged))
        except (ValueError, IndexError):
            return None
        return rows
