"""Totality, by property (issue 10): every reader is fed real outputs cut at random points, torn, with CRLF line
ends, launcher tags, interleaved stderr and bytes it cannot decode. It raises nothing but its own ParseError, never
invents a number (every row it returns is a row of the unmangled output), and reports a cut output as incomplete.

Bounded: a fixed number of examples per property, derandomized, so the file runs in seconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterproof.errors import ParseError
from clusterproof.network import nccl, nccl_debug, rdma
from clusterproof.network.nccl_json import parse_json

DATA = Path(__file__).parent / "data"
REAL = DATA / "real"
# CP_PROPERTY_EXAMPLES=2000 explores further (random seed); the default is the bounded, repeatable CI run.
_EXPLORE = int(os.environ.get("CP_PROPERTY_EXAMPLES", "0"))
PROPERTY = settings(max_examples=_EXPLORE or 100, deadline=None, derandomize=not _EXPLORE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Real stderr lines (from the corpus and the launchers) that interleave with stdout in a combined log.
STDERR = [
    "Authorization required, but no authorization protocol specified",
    "Warning: Permanently added '[192.168.173.233]:2022' (RSA) to the list of known hosts.",
    "--------------------------------------------------------------------------",
    "srun: error: node07: task 3: Exited with exit code 1",
]
TAGS = ["[1,0]<stdout>:", "[1,1]<stderr>:", "0: ", "12: ", "[3] "]


def _complete_text_samples() -> list[str]:
    names = [p for p in sorted((REAL / "nccl_tests").iterdir())] + sorted((DATA / "nccl").glob("*.txt"))
    out = []
    for p in names:
        text = p.read_text(errors="replace")
        try:
            nccl.parse(text)
        except ParseError:
            continue
        out.append(text)
    return out


TEXTS = _complete_text_samples()
DEBUG_TEXTS = [p.read_text() for p in sorted((REAL / "nccl_debug").iterdir())] + [
    p.read_text() for p in sorted((DATA / "nccl_debug").rglob("*.log"))
] + [p.read_text() for p in sorted((DATA / "nccl_debug" / "combined").glob("*.txt"))]
GID_TEXTS = [p.read_text() for p in sorted((DATA / "gids").glob("*.txt"))] + [
    (REAL / "gids" / n).read_text().rsplit("\n", 1)[0] + "\n"
    for n in ("nccl-tests_issue192_show_gids_indented_paste.txt", "nccl_issue1573_show_gids_macvlan_pod_index_4-7.txt",
              "mooncake_issue1617_show_gids_mi355_ipv6_only_spaces.txt")
]
DUMP_TEXTS = [
    "\n".join(p.read_text().split("::clusterproof-facts gids\n", 1)[1].split("::clusterproof-facts", 1)[0].splitlines()) + "\n"
    for p in sorted((DATA / "facts").glob("sandbox-node*.txt"))
]


# ------------------------------------------------------------------------------------------------ mangling

@st.composite
def mangled(draw: st.DrawFn, texts: list[str]) -> tuple[str, str, dict[str, object]]:
    """(original, mangled, what was done): a real text cut, torn, retagged, CRLF'd, with stderr and junk bytes."""
    original = draw(st.sampled_from(texts))
    lines = original.split("\n")
    how: dict[str, object] = {}
    if draw(st.booleans()):  # launcher tags on every line, as mpirun --tag-output / srun -l print them
        tag = draw(st.sampled_from(TAGS))
        lines = [tag + line for line in lines[:-1]] + lines[-1:]
        how["tag"] = tag
    for _ in range(draw(st.integers(0, 3))):  # stderr lines interleaved
        lines.insert(draw(st.integers(0, len(lines) - 1)), draw(st.sampled_from(STDERR)))
    text = "\n".join(lines)
    for _ in range(draw(st.integers(0, 2))):  # torn lines: a line end inside a line (re-tagged, as mpirun does)
        i = draw(st.integers(0, len(text)))
        text = text[:i] + "\n" + str(how.get("tag", "")) + text[i:]
        how["torn"] = True
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    data = text.encode()
    for _ in range(draw(st.integers(0, 2))):  # bytes that are no UTF-8
        i = draw(st.integers(0, len(data)))
        data = data[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\xe2\x82"])) + data[i:]
        how["bytes"] = True
    if draw(st.booleans()):  # cut at a random point
        cut = draw(st.integers(0, len(data)))
        data = data[:cut]
        how["cut"] = cut
    return original, data.decode("utf-8", errors="replace"), how


@cache
def _text_truth(text: str) -> nccl.NcclRun:
    return nccl.parse(text)


@cache
def _debug_truth(text: str) -> tuple[nccl_debug.TransportReport, nccl_debug.TransportReport]:
    return nccl_debug.parse_debug_text(text), nccl_debug.parse_debug_files({"node1/nccl.node1.1.log": text})


def _rows(run: nccl.NcclRun) -> set[tuple[object, ...]]:
    return {tuple(r) for r in run.results.astype(object).where(run.results.notna(), None).itertuples(index=False)}


def _total(fn: Callable[[], object]) -> object | None:
    try:
        return fn()
    except ParseError:
        return None


# ------------------------------------------------------------------------------------------------ properties


@PROPERTY
@given(mangled(TEXTS))
def test_nccl_text_reader_is_total_and_invents_nothing(case: tuple[str, str, dict[str, object]]) -> None:
    original, text, how = case
    run = _total(lambda: nccl.parse(text))
    if run is None:
        return
    assert isinstance(run, nccl.NcclRun)
    truth = _text_truth(original)
    # every row read from the mangled text is a row of the real output: no number invented, none misplaced
    assert _rows(run) <= _rows(truth), sorted(_rows(run) - _rows(truth))[:3]
    if run.avg_busbw_gbs is not None:
        assert run.avg_busbw_gbs == truth.avg_busbw_gbs
    footer = original.find("# Avg bus bandwidth")
    if "cut" in how and footer >= 0 and "tag" not in how and "torn" not in how and "bytes" not in how:
        end = original.index("\n", footer)
        if int(how["cut"]) <= len(original[:end].encode()):  # type: ignore[call-overload]
            assert not run.complete, "a run cut before its footer line ended was reported complete"


@PROPERTY
@given(mangled(DEBUG_TEXTS))
def test_nccl_debug_reader_is_total_and_invents_nothing(case: tuple[str, str, dict[str, object]]) -> None:
    original, text, how = case
    report = nccl_debug.parse_debug_text(text)
    files = nccl_debug.parse_debug_files({"node1/nccl.node1.1.log": text})
    truth, truth_files = _debug_truth(original)
    # A tear can free a line from a tag that hid it from the file reader (which strips no tags): compare with the
    # union of what both readers find in the real text.
    for got, real in ((report, truth), (files, truth_files)):
        assert got.versions <= truth.versions | truth_files.versions
        if "tag" in how or "torn" not in how:
            # Known limit: an untagged stream torn with another program's line between the halves cannot be
            # rejoined, so the first half is read as it stands ("Using network S"). NCCL_DEBUG_FILE logs (what
            # the suite collects) are never torn, and tagged streams are rejoined per tag.
            nets = set(truth.ranks["net"].dropna()) | set(truth_files.ranks["net"].dropna()) | {"Socket"}
            assert set(got.ranks["net"].dropna()) <= nets
        assert set(got.ranks["gid_index"].dropna()) <= set(real.ranks["gid_index"].dropna())
        assert set(got.ranks["nccl_version"].dropna()) <= truth.versions | truth_files.versions


@PROPERTY
@given(mangled(GID_TEXTS))
def test_show_gids_reader_is_total_and_invents_nothing(case: tuple[str, str, dict[str, object]]) -> None:
    original, text, how = case
    table = _total(lambda: rdma.parse_show_gids(text))
    if table is None:
        return
    assert isinstance(table, pd.DataFrame)
    truth = rdma.parse_show_gids(original)
    key = ["dev", "port", "index", "gid"]
    assert set(map(tuple, table[key].to_numpy())) <= set(map(tuple, truth[key].to_numpy()))
    if "cut" in how and text and not text.endswith(("\n", "\r")) and text.split("\n")[-1].split()[:1]:
        last = text.split("\n")[-1].split()
        if last and last[0] not in ("DEV",) and not set(last[0]) <= {"-"}:
            raise AssertionError(f"a show_gids output cut inside a row was read: {text[-60:]!r}")


@PROPERTY
@given(mangled(DUMP_TEXTS))
def test_gid_dump_reader_is_total_and_reports_cuts(case: tuple[str, str, dict[str, object]]) -> None:
    original, text, how = case
    table = _total(lambda: rdma.parse_gid_dump(text))
    if table is None:
        return
    assert isinstance(table, pd.DataFrame)
    truth = rdma.parse_gid_dump(original)
    key = ["dev", "port", "index", "gid"]
    assert set(map(tuple, table[key].to_numpy())) <= set(map(tuple, truth[key].to_numpy()))
    assert rdma.DUMP_END in text  # read to the end: never a cut dump


JSON_DOCS = [p.read_text() for p in sorted((DATA / "nccl").glob("*.json"))]


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(JSON_DOCS), st.integers(0, 6000), st.sampled_from([b"", b"\xff", b"\x00", b"}"]), st.booleans())
def test_nccl_json_reader_is_total(tmp_path_factory, doc: str, cut: int, junk: bytes, crlf: bool) -> None:  # type: ignore[no-untyped-def]
    data = (doc.replace("\n", "\r\n") if crlf else doc).encode()
    data = data[: min(cut, len(data))] + junk if cut < len(data) else data + junk
    path = tmp_path_factory.mktemp("json") / "run.json"
    path.write_bytes(data)
    run = _total(lambda: parse_json(path))
    if run is None:
        return
    assert isinstance(run, nccl.NcclRun)
    full = tmp_path_factory.mktemp("json") / "full.json"
    full.write_text(doc)
    truth = parse_json(full)
    assert _rows(run) <= _rows(truth)
    try:
        json.loads(data)
        whole = True
    except ValueError:
        whole = False
    if not whole:
        assert not run.complete, "a JSON report that does not parse whole was reported complete"
