"""busbw_factor (nccl-tests' *GetBw formulas), collective names from binaries, NCCL version codes, and the
NcclRun busbw check on hand-built runs."""

from __future__ import annotations

import pytest

from clusterproof.network import nccl


@pytest.mark.parametrize(
    ("collective", "n", "factor"),
    [
        ("all_reduce", 16, 2 * 15 / 16),
        ("all_reduce_perf", 2, 1.0),
        ("all_reduce", 1, 0.0),
        ("reduce_scatter", 8, 7 / 8),
        ("all_gather_perf", 32, 31 / 32),
        ("alltoall", 4, 3 / 4),
        ("alltoallv", 4, 3 / 4),
        ("gather", 16, 15 / 16),
        ("scatter_perf", 16, 15 / 16),
        ("broadcast", 16, 1.0),
        ("reduce", 16, 1.0),
        ("sendrecv_perf", 16, 1.0),
        ("hypercube", 16, 1.0),
    ],
)
def test_nccl_busbw_factor_formulas(collective: str, n: int, factor: float) -> None:
    assert nccl.busbw_factor(collective, n) == pytest.approx(factor, rel=1e-12)


@pytest.mark.parametrize(
    ("collective", "n"), [("all_to_all", 8), ("", 8), ("all_reduce", 0), ("broadcast", -2)]
)
def test_nccl_busbw_factor_rejects_bad_input(collective: str, n: int) -> None:
    with pytest.raises(ValueError):
        nccl.busbw_factor(collective, n)


@pytest.mark.parametrize(
    ("binary", "name"),
    [
        ("all_reduce_perf", "all_reduce"),
        ("/opt/nccl-tests/build/all_reduce_perf", "all_reduce"),
        ("./build/broadcast_perf", "broadcast"),
        ("reduce_perf", "reduce"),
        ("reduce_scatter_perf", "reduce_scatter"),
        ("alltoallv_perf", "alltoallv"),
        ("alltoall_perf", "alltoall"),
        ("all_gather_perf_mpi", "all_gather"),
        ("alltoallv2_perf", "alltoallv2"),
        ("mpirun", None),
        ("", None),
    ],
)
def test_nccl_collective_name_from_binary(binary: str, name: str | None) -> None:
    assert nccl.collective_name(binary) == name


@pytest.mark.parametrize(
    ("code", "version"), [(22803, "2.28.3"), (21903, "2.19.3"), (23102, "2.31.2"), (2708, "2.7.8")]
)
def test_nccl_version_code_decodes(code: int, version: str) -> None:
    assert nccl.decode_nccl_version_code(code) == version


def run_of(rows: list[tuple[float, float]], collective: str | None, nranks: int) -> nccl.NcclRun:
    """A run with one out-of-place row per (algbw, busbw) pair."""
    n = len(rows)
    cols: dict[str, list[object]] = {
        "size_bytes": [1 << (20 + i) for i in range(n)],
        "count": [1 << (18 + i) for i in range(n)],
        "dtype": ["float"] * n,
        "redop": ["sum"] * n,
        "root": [-1] * n,
        "placement": ["out-of-place"] * n,
        "time_us": [100.0] * n,
        "algbw_gbs": [a for a, _ in rows],
        "busbw_gbs": [b for _, b in rows],
        "wrong": [0] * n,
    }
    devices = [(r, 0, 1000 + r, "node", r, "0000:00:00", "GPU") for r in range(nranks)]
    return nccl.NcclRun(
        results=nccl.results_frame(cols),
        collective=collective,
        nranks=nranks,
        devices=nccl.devices_frame(devices),
    )


def test_nccl_busbw_check_accepts_print_rounding() -> None:
    # 180.71 x 1.875 = 338.83 printed as 338.82 (true algbw 180.705); 0.01 x 1.875 = 0.019 printed 0.02
    run = run_of(
        [(180.71, 338.82), (0.01, 0.02), (0.01, 0.01), (0.0, 0.01), (1000.5, 1876.0)], "all_reduce", 16
    )
    assert run.busbw_mismatches() == [] and run.errors == []


def test_nccl_busbw_check_flags_wrong_values() -> None:
    run = run_of([(180.71, 338.82), (100.0, 100.0)], "all_reduce", 16)
    assert run.errors == [
        "busbw mismatch at 2097152 B out-of-place (float sum): printed busbw 100.00 GB/s but algbw 100.00 x 1.875 "
        "(all_reduce, 16 ranks) = 187.50 GB/s; the row or the rank count was misread"
    ]


def test_nccl_busbw_check_skips_unknown_collective_or_ranks() -> None:
    rows = [(100.0, 1.0)]
    assert run_of(rows, None, 16).errors == []
    assert run_of(rows, "alltoallv2", 16).errors == []
    assert run_of(rows, "all_reduce", 0).errors == []


def test_nccl_run_defaults_are_empty_and_typed() -> None:
    run = nccl.NcclRun()
    assert list(run.results.columns) == list(nccl.RESULT_COLUMNS) and run.results.empty
    assert str(run.results["wrong"].dtype) == "Int64" and str(run.results["size_bytes"].dtype) == "int64"
    assert list(run.devices.columns) == list(nccl.DEVICE_COLUMNS)
    assert (run.sizes(), run.wrong_total(), run.complete, run.errors) == ([], 0, False, [])


def test_printed_size_rounds_split_collectives_to_whole_ranks() -> None:
    from clusterproof.network.nccl import printed_size

    # measured with the stand-in at -np 3: all_gather -b 64K -e 256K prints 65532 and 262140
    assert printed_size("all_gather", 64 << 10, 3) == 65532
    assert printed_size("all_gather_perf", 256 << 10, 3) == 262140
    assert printed_size("reduce_scatter", 64 << 10, 3) == 65532
    assert printed_size("alltoall", 1 << 20, 4) == 1 << 20  # divides: unchanged
    assert printed_size("all_reduce", 64 << 10, 3) == 64 << 10  # not split by ranks
    assert printed_size("broadcast", 1 << 20, 6) == 1 << 20
