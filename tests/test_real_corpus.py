"""The real-output corpus (tests/data/real/corpus.yaml): every expectation read off each real file by hand is
asserted here, for nccl-tests/rccl-tests text, NCCL debug logs and show_gids pastes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterproof.errors import ParseError
from clusterproof.network import gid_choice, nccl, nccl_debug, rdma
from clusterproof.network.failure_cause import failure_cause

REAL = Path(__file__).parent / "data" / "real"
CORPUS: dict[str, dict[str, dict[str, Any]]] = yaml.safe_load((REAL / "corpus.yaml").read_text())


def _cases(kind: str) -> list[Any]:
    return [pytest.param(name, exp, id=name.rsplit(".", 1)[0]) for name, exp in CORPUS[kind].items()]


def test_corpus_is_complete_and_sourced() -> None:
    listed = {f"{kind}/{name}" for kind, files in CORPUS.items() for name in files}
    on_disk = {f"{p.parent.name}/{p.name}" for p in REAL.glob("*/*") if p.is_file()}
    assert listed == on_disk
    assert len(listed) >= 25
    assert all(exp.get("source") for files in CORPUS.values() for exp in files.values())


@pytest.mark.parametrize(("name", "exp"), _cases("nccl_tests"))
def test_real_nccl_tests_text(name: str, exp: dict[str, Any]) -> None:
    text = (REAL / "nccl_tests" / name).read_text()
    if "cause" in exp:
        assert exp["cause"] in failure_cause(text)[0]
    if exp.get("parse_error"):
        with pytest.raises(ParseError):
            nccl.parse(text)
        return
    run = nccl.parse(text)
    res = run.results
    if "rows" in exp:
        assert len(res) == exp["rows"], run.errors
    if "sizes" in exp:
        assert len(run.sizes()) == exp["sizes"]
    if "largest" in exp:
        size, busbw = exp["largest"]
        assert max(run.sizes()) == size
        row = res[(res["size_bytes"] == size) & (res["placement"] == "out-of-place")]
        assert float(row["busbw_gbs"].iloc[-1]) == busbw
    if "wrong" in exp:
        assert (res["wrong"].isna().all() if exp["wrong"] is None else run.wrong_total() == exp["wrong"])
    for key, attr in (("ranks", "nranks"), ("complete", "complete"), ("version", "version"),
                      ("nccl_version", "nccl_version"), ("collective", "collective"), ("avg_busbw", "avg_busbw_gbs")):
        if key in exp:
            assert getattr(run, attr) == exp[key], key
    for key, value in exp.get("header", {}).items():
        assert run.header[key] == value
    for needle in exp.get("errors", []):
        assert any(needle in e for e in run.errors), (needle, run.errors)
    for needle in exp.get("no_errors", []):
        assert not any(needle in e for e in run.errors), (needle, run.errors)
    if exp.get("complete") and not exp.get("errors"):
        assert run.errors == []


@pytest.mark.parametrize(("name", "exp"), _cases("nccl_debug"))
def test_real_nccl_debug_logs(name: str, exp: dict[str, Any]) -> None:
    report = nccl_debug.parse_debug_text((REAL / "nccl_debug" / name).read_text())
    ranks = report.ranks
    if "processes" in exp:
        assert ranks[["host", "pid"]].drop_duplicates().shape[0] == exp["processes"]
    if "ranks" in exp:
        assert sorted(int(r) for r in ranks["rank"].dropna()) == exp["ranks"]
    for host, net in exp.get("net", {}).items():
        nets = set(ranks.loc[ranks["host"] == host, "net"])
        assert nets == {net}, (host, nets)
    if "net_counts" in exp:
        assert dict(Counter(n for n in ranks["net"] if n is not None)) == exp["net_counts"]
    if "versions" in exp:
        assert sorted(report.versions) == exp["versions"]
    if "devices" in exp:
        assert exp["devices"] in set(ranks["net_devices"].dropna())
    if "warns" in exp:
        assert int(ranks["warns"].sum()) == exp["warns"]
    if "gdr" in exp:
        if exp["gdr"] is None:
            assert ranks["gdr_all"].isna().all()
        else:
            assert ranks["gdr_all"].tolist() == [exp["gdr"]] * len(ranks)
    for rank, count in exp.get("channels", {}).items():
        assert int(ranks.loc[ranks["rank"] == rank, "cross_node_channels"].iloc[0]) == count, rank
    if "cut_lines" in exp:
        assert report.cut_lines == exp["cut_lines"]


@pytest.mark.parametrize(("name", "exp"), _cases("gids"))
def test_real_show_gids(name: str, exp: dict[str, Any]) -> None:
    text = (REAL / "gids" / name).read_text()
    if "parse_error" in exp:
        with pytest.raises(ParseError, match=exp["parse_error"]):
            rdma.parse_show_gids(text)
    else:
        assert len(rdma.parse_show_gids(text)) == exp["rows"]
    whole = exp.get("whole_lines")
    if whole:  # the lines before the cut are whole: they parse, and the GID index is the one a person reads
        table = rdma.parse_show_gids(text.rsplit("\n", 1)[0] + "\n")
        assert len(table) == whole["rows"]
        for case in whole["choose"]:
            kwargs = {k: v for k, v in case.items() if k != "index"}
            assert gid_choice.choose_gid_index(table, **kwargs) == case["index"], case
