"""clusterproof.network.nccl.parse_json on nccl-tests -J reports (JSON_FILE_VERSION 3): the numbers, the per-process
device list, truncated files, malformed files, and the env list that must never be kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clusterproof.errors import ParseError
from clusterproof.network import nccl

DATA = Path(__file__).parent / "data" / "nccl"
REPORT = DATA / "17_v2.19.6_all_reduce_per-iter.json"
TRUNCATED = DATA / "18_v2.19.6_all_reduce_truncated.json"
PLANTED = ("planted-secret-xyz", "planted-access-key-id", "AWS_SECRET_ACCESS_KEY", "OMPI_COMM_WORLD_RANK")


def everything_in(run: nccl.NcclRun) -> str:
    """Every value the run holds, as text."""
    parts = [
        repr(run),
        str(vars(run)),
        run.results.to_csv(),
        run.devices.to_csv(),
        str(run.header),
        *run.errors,
    ]
    return "\n".join(parts)


def test_nccl_json_report_numbers() -> None:
    run = nccl.parse_json(REPORT)
    assert list(run.results.columns) == list(nccl.RESULT_COLUMNS)
    assert run.sizes() == [67108864 * 2**i for i in range(5)]
    assert len(run.results) == 10
    big = run.row(1073741824, "out-of-place")
    assert (big["count"], big["dtype"], big["redop"], big["root"]) == (
        268435456,
        "float",
        "sum",
        -1,
    )  # root "    -1"
    assert (big["time_us"], big["algbw_gbs"], big["busbw_gbs"], big["wrong"]) == (
        2931.402753,
        366.289423,
        686.792669,
        0,
    )
    assert run.row(67108864, "in-place")["busbw_gbs"] == 553.994727
    assert str(run.results["wrong"].dtype) == "Int64" and run.wrong_total() == 0
    assert run.avg_busbw_gbs == 637.892953 and run.out_of_bounds == 0
    assert run.complete is True and run.errors == []


def test_nccl_json_report_metadata() -> None:
    run = nccl.parse_json(str(REPORT))
    assert run.collective == "all_reduce"  # from args[0]
    assert run.nccl_version == "2.28.3" and run.version is None
    # nccl-tests lists one device per process (it parses only each process's first Rank line): 2 x -g 8
    assert run.nranks == 16 and len(run.devices) == 2
    assert run.devices["rank"].tolist() == [0, 8] and run.devices["pid"].tolist() == [51200, 49877]
    assert run.hosts == ["h100-a17", "h100-a18"] and set(run.devices["bus_id"]) == {"0000:18:00"}
    assert run.header == {
        "nThread": 1, "nGpus": 8, "minBytes": 67108864, "maxBytes": 1073741824, "step": 2, "step type": "factor",
        "warmup iters": 1, "iters": 20, "agg iters": 1, "validation": 1, "graph": 0, "per-iteration skip": 0,
        "blocking": 0, "per-iteration": 1, "parallel init": 0,
    }  # fmt: skip
    assert run.standin is False


def test_nccl_json_env_is_never_kept() -> None:
    assert "planted-secret-xyz" in REPORT.read_text()  # the fixture does carry the secret
    for path in (REPORT, TRUNCATED):
        held = everything_in(nccl.parse_json(path))
        for secret in PLANTED:
            assert secret not in held, f"{path.name}: {secret} leaked into the NcclRun"


def test_nccl_json_truncated_report_is_salvaged() -> None:
    run = nccl.parse_json(TRUNCATED)
    assert run.complete is False
    assert run.sizes() == [67108864, 134217728] and len(run.results) == 4
    assert run.row(134217728, "out-of-place")["busbw_gbs"] == 620.15285
    assert run.nranks == 16 and run.collective == "all_reduce" and run.avg_busbw_gbs is None
    assert run.errors == [
        f"{TRUNCATED}: JSON cut off at line 1 column 2915 (the run died?): kept 2 whole result rows"
    ]


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    return path


def minimal(**result: object) -> dict[str, object]:
    body = {"time": 10.0, "alg_bw": 1.0, "bus_bw": 1.875, "nwrong": 0.0}
    row = {"size": 1024, "count": 256, "type": "float", "redop": "sum", "root": "    -1"}
    row |= {"out_of_place": body, "in_place": body} | result
    return {
        "version": 3,
        "args": ["./all_reduce_perf"],
        "env": ["TOKEN=planted-secret-xyz"],
        "nccl_version": 22704,
        "config": {"nthreads": 1, "ngpus": 1, "devices": []},
        "results": [row],
        "out_of_bounds": {"count": 0, "okay": "true"},
        "average_bus_bandwidth": {"bandwidth": 1.875, "okay": "unchecked"},
        "errors": [],
    }


def test_nccl_json_nan_null_and_cpu_time(tmp_path: Path) -> None:
    run = nccl.parse_json(
        write(
            tmp_path,
            minimal(
                out_of_place={"cpu_time": 12.5, "alg_bw": "nan", "bus_bw": "nan", "nwrong": None},
                in_place={"cpu_time": 11.0, "alg_bw": 2.0, "bus_bw": 2.0, "nwrong": 3.0},
            ),
        )
    )
    out, inp = run.row(1024, "out-of-place"), run.row(1024, "in-place")
    assert out["time_us"] == 12.5 and pd.isna(out["algbw_gbs"]) and pd.isna(out["wrong"])
    assert (inp["time_us"], inp["wrong"]) == (11.0, 3)
    assert run.header["cputime"] == 1 and run.nccl_version == "2.27.4"
    assert run.nranks == 0 and run.errors == []  # no devices listed: no rank count, no busbw check


def test_nccl_json_failed_checks_and_errors_are_reported(tmp_path: Path) -> None:
    doc = minimal()
    doc["out_of_bounds"] = {"count": 2, "okay": "false"}
    doc["average_bus_bandwidth"] = {"bandwidth": 1.875, "okay": "false"}
    doc["errors"] = ["remote process exited or there was a network error"]
    path = write(tmp_path, doc)
    run = nccl.parse_json(path)
    assert run.errors == [
        f"{path}: nccl-tests reports 2 results out of bounds (wrong)",
        f"{path}: average bus bandwidth 1.875 GB/s is below 0.9 x NCCL_TESTS_MIN_BW",
        f"{path}: nccl-tests error: remote process exited or there was a network error",
    ]


def test_nccl_json_unfinished_report_is_incomplete(tmp_path: Path) -> None:
    doc = minimal()
    del doc["average_bus_bandwidth"]
    run = nccl.parse_json(write(tmp_path, doc))
    assert run.complete is False and run.avg_busbw_gbs is None
    assert run.errors == [f"{tmp_path / 'run.json'}: no 'average_bus_bandwidth': the run did not finish"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{not json",
            r"run.json: not an nccl-tests JSON report: Expecting property name .* at line 1 column 2",
        ),
        ("[1, 2]", r"run.json: not an nccl-tests JSON report \(no 'config' or 'results' object\)"),
        ('{"version": 3}', r"run.json: not an nccl-tests JSON report"),
        (json.dumps(minimal(size="big")), r"run.json: results\[0\].size: expected an integer, got 'big'"),
        (
            json.dumps(minimal(in_place={"time": 1.0, "alg_bw": [], "bus_bw": 1.0})),
            r"results\[0\].in_place.alg_bw",
        ),
        (json.dumps(minimal(out_of_place=7)), r"results\[0\].out_of_place: expected an object, got int"),
        (json.dumps({**minimal(), "config": []}), r"run.json: config: expected dict, got list"),
    ],
)
def test_nccl_json_malformed_report_raises(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(ParseError, match=message) as info:
        nccl.parse_json(path)
    assert "planted-secret-xyz" not in str(info.value)


def test_nccl_json_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="nope.json: cannot read nccl-tests JSON report"):
        nccl.parse_json(tmp_path / "nope.json")
