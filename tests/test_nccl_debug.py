"""clusterproof.network.nccl_debug: NCCL_DEBUG=INFO logs of NCCL 2.7 to 2.30 -> one row per rank."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clusterproof.errors import ParseError
from clusterproof.network.nccl_debug import (
    RANK_COLUMNS,
    TransportReport,
    decode_gid,
    nccl_debug_env,
    parse_debug_files,
    parse_debug_text,
)

DATA = Path(__file__).parent / "data" / "nccl_debug"

# Columns compared row by row below; the rest get their own tests.
COLS = ["rank", "host", "pid", "cuda_dev", "nccl_version", "net", "net_devices", "relaxed_ordering", "gdr_all",
        "cross_node_channels", "via", "pxn", "nvls", "collnet", "gid_index", "gid", "warns"]
ROCE2 = "mlx5_0:1/RoCE,mlx5_1:1/RoCE"
NA = None  # written as None in the expected rows, read back from pandas NA


def load(name: str) -> TransportReport:
    path = DATA / name
    if path.is_file():
        return parse_debug_text(path.read_text())
    return parse_debug_files({p.name: p.read_text() for p in sorted(path.iterdir())})


def rows(report: TransportReport) -> list[tuple[object, ...]]:
    frame = report.ranks[COLS].astype(object)
    return [tuple(None if v is pd.NA else v for v in rec) for rec in frame.itertuples(index=False)]


def test_nccl_debug_roce_gdr_rows_exact() -> None:
    r = load("roce_gdr")
    assert rows(r) == [
        (0, "gpu-a01", 21437, 0, "2.23.4", "IB", ROCE2, True, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, 3, "::ffff:10.20.1.11", 0),
        (1, "gpu-a01", 21438, 1, "2.23.4", "IB", ROCE2, True, True, 4, "NET/IB/1/GDRDMA x4", False, False, False, 3, "::ffff:10.20.2.11", 0),
        (2, "gpu-a02", 18802, 0, "2.23.4", "IB", ROCE2, True, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, 3, "::ffff:10.20.1.12", 0),
        (3, "gpu-a02", 18803, 1, "2.23.4", "IB", ROCE2, True, True, 4, "NET/IB/1/GDRDMA x4", False, False, False, 3, "::ffff:10.20.2.12", 0),
    ]
    assert r.versions == {"2.23.4"}
    assert r.warnings == []
    assert r.unknown_lines == 0


def test_nccl_debug_columns_and_dtypes_fixed() -> None:
    frame = load("roce_gdr").ranks
    assert list(frame.columns) == list(RANK_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == RANK_COLUMNS


def test_nccl_debug_ib_has_no_gid() -> None:
    r = load("ib")
    ib2 = "mlx5_0:1/IB,mlx5_1:1/IB"
    assert rows(r) == [
        (0, "gpu-h01", 7301, 0, "2.27.3", "IB", ib2, True, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, NA, NA, 0),
        (1, "gpu-h01", 7302, 1, "2.27.3", "IB", ib2, True, True, 4, "NET/IB/1/GDRDMA x4", False, False, False, NA, NA, 0),
        (2, "gpu-h02", 6644, 0, "2.27.3", "IB", ib2, True, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, NA, NA, 0),
        (3, "gpu-h02", 6645, 1, "2.27.3", "IB", ib2, True, True, 4, "NET/IB/1/GDRDMA x4", False, False, False, NA, NA, 0),
    ]


def test_nccl_debug_socket_fallback_rows_and_reasons() -> None:
    r = load("socket_fallback")
    assert rows(r) == [
        (0, "gpu-b01", 31337, 0, "2.19.3", "Socket", "eth0:10.30.0.11", NA, False, 4, "NET/Socket/0 x4", False, False, False, NA, NA, 0),
        (1, "gpu-b01", 31338, 1, NA, "Socket", "eth0:10.30.0.11", NA, False, 4, "NET/Socket/0 x4", False, False, False, NA, NA, 0),
        (2, "gpu-b02", 29020, 0, NA, "Socket", "eth0:10.30.0.12", NA, False, 4, "NET/Socket/0 x4", False, False, False, NA, NA, 0),
        (3, "gpu-b02", 29021, 1, NA, "Socket", "eth0:10.30.0.12", NA, False, 4, "NET/Socket/0 x4", False, False, False, NA, NA, 0),
    ]
    reasons = [ev.network_reasons for ev in r.evidence]
    assert reasons[0] == ("gpu-b01:31337:31408 [0] NCCL INFO Failed to open libibverbs.so[.1]",)
    assert reasons[2] == ("gpu-b02:29020:29091 [0] NCCL INFO NET/IB : No device found.",)
    assert r.evidence[3].network_lines == ("gpu-b02:29021:29092 [1] NCCL INFO Using network Socket",)


def test_nccl_debug_gdr_missing_on_one_node() -> None:
    r = load("gdr_missing")
    assert r.ranks["gdr_all"].tolist() == [True, True, False, False]
    assert r.ranks["via"].tolist() == ["NET/IB/0/GDRDMA x4", "NET/IB/1/GDRDMA x4", "NET/IB/0 x4", "NET/IB/1 x4"]
    assert r.evidence[3].gdr_hca_lines == (
        "gpu-e02:15361:15432 [1] NCCL INFO NET/IB : GPU Direct RDMA Disabled for HCA 0 'mlx5_0'",
        "gpu-e02:15361:15432 [1] NCCL INFO NET/IB : GPU Direct RDMA Disabled for HCA 1 'mlx5_1'",
    )
    # <= 2.21: only rank 0 prints the version
    assert r.ranks["nccl_version"].tolist() == ["2.21.5", None, None, None]


def test_nccl_debug_link_local_gid_decoded() -> None:
    r = load("link_local_gid")
    assert r.ranks["gid_index"].tolist() == [3, 3, 0, 0]
    assert r.ranks["gid"].tolist() == ["::ffff:10.20.1.11", "::ffff:10.20.2.11", "fe80::1c:73ff:fe9e:7a2",
                                       "fe80::1c:73ff:fe9e:7a3"]
    use = r.evidence[2].gids[0]
    assert (use.host, use.pid, use.rank, use.hca, use.port, use.gid_index) == ("gpu-f02", 3702, 2, "mlx5_0", 1, 0)
    assert "GID 0 (80FE/A2079EFEFF731C00)" in use.line
    assert r.evidence[0].env == {"NCCL_IB_GID_INDEX": "3"}
    assert r.evidence[2].env == {}


def test_nccl_debug_mixed_versions_and_aborted_init() -> None:
    r = load("mixed_versions")
    assert r.versions == {"2.27.3", "2.26.2"}
    assert r.ranks[["rank", "host", "nccl_version", "warns"]].values.tolist() == [
        [0, "gpu-g01", "2.27.3", 1], [1, "gpu-g01", "2.27.3", 1], [2, "gpu-g02", "2.26.2", 1]]
    # the communicator never came up: nothing is claimed about channels, NVLS or CollNet
    assert r.ranks["cross_node_channels"].tolist() == [0, 0, 0]
    assert r.ranks[["gdr_all", "pxn", "nvls", "collnet"]].isna().all().all()
    w = r.warnings[2]
    assert (w.host, w.pid, w.rank) == ("gpu-g02", 2877, 2)
    assert w.text == "Mismatched NCCL version detected : rank 2 version 22602 rank 0 version 22703"
    assert w.line.startswith("[2026-04-14 09:12:31] gpu-g02:2877:2948 [0] init.cc:1046 NCCL WARN ")


def test_nccl_debug_strict_mode_failure_has_no_rank() -> None:
    r = load("strict_no_verbs")
    assert r.ranks[["rank", "host", "net"]].astype(object).where(r.ranks[["rank", "host", "net"]].notna(), None) \
        .values.tolist() == [[0, "gpu-n01", "IB"], [1, "gpu-n01", "IB"], [None, "gpu-n02", None], [None, "gpu-n02", None]]
    assert [(w.host, w.rank, w.text) for w in r.warnings] == [
        ("gpu-n02", None, "Failed to initialize any NET plugin")] * 2
    assert r.evidence[2].network_reasons == (
        "gpu-n02:23305:23376 [0] NCCL INFO Failed to open libibverbs.so[.1]",
        "gpu-n02:23305:23376 [0] NCCL INFO Failed to initialize NET plugin IB",
        "[2026-05-03 17:44:08] gpu-n02:23305:23376 [0] plugin/net.cc:334 NCCL WARN Failed to initialize any NET plugin",
    )


def test_nccl_debug_two_ranks_in_one_process_split_by_cuda_dev() -> None:
    r = load("two_gpus_per_process")
    assert r.ranks[["rank", "host", "pid", "cuda_dev", "via", "gid"]].values.tolist() == [
        [0, "gpu-q01", 61002, 0, "NET/IB/0/GDRDMA x4", "::ffff:10.20.1.11"],
        [1, "gpu-q01", 61002, 1, "NET/IB/1/GDRDMA x4", "::ffff:10.20.2.11"],
        [2, "gpu-q02", 60117, 0, "NET/IB/0/GDRDMA x4", "::ffff:10.20.1.12"],
        [3, "gpu-q02", 60117, 1, "NET/IB/1/GDRDMA x4", "::ffff:10.20.2.12"],
    ]
    # per-process lines (version, device list) are printed once but hold for both ranks
    assert r.ranks["nccl_version"].tolist() == ["2.24.3"] * 4
    assert r.ranks["net_devices"].tolist() == [ROCE2] * 4


def test_nccl_debug_era_2_7() -> None:
    r = load("era_2_7")
    assert rows(r) == [
        (0, "gpu-k01", 9071, 0, "2.7.8", "IB", "mlx5_0:1/IB", False, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, NA, NA, 0),
        (1, "gpu-k02", 11604, 0, NA, "IB", "mlx5_0:1/IB", False, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, NA, NA, 0),
    ]


def test_nccl_debug_era_2_14_busid_channels_and_plain_warn() -> None:
    r = load("era_2_14")
    assert r.ranks["cross_node_channels"].tolist() == [4, 4, 4, 4]
    assert r.ranks["gdr_all"].tolist() == [True] * 4
    assert r.ranks["gid"].tolist() == ["::ffff:10.20.1.11", "::ffff:10.20.2.11", "::ffff:10.20.1.12", "::ffff:10.20.2.12"]
    assert r.ranks["nvls"].tolist() == [False] * 4  # no NVLS before 2.17
    assert r.evidence[1].net_channel_lines[0] == (
        "gpu-m01:8812:8901 [1] NCCL INFO Channel 00/0 : 1[2a000] -> 2[18000] [send] via NET/IB/1/GDRDMA")
    assert [(w.host, w.pid, w.rank, w.text) for w in r.warnings] == [
        ("gpu-m02", 9931, 3, "NET/IB : Got async event : GID table change")]
    assert r.ranks["warns"].tolist() == [0, 0, 0, 1]


def test_nccl_debug_era_2_26_pxn_and_timestamped_warn() -> None:
    r = load("era_2_26")
    assert r.ranks["pxn"].tolist() == [True] * 4
    assert r.ranks["via"].tolist() == [
        "NET/IB/0/GDRDMA x4", "NET/IB/1/GDRDMA x3, NET/IB/0(0)/GDRDMA x1",
        "NET/IB/0/GDRDMA x4", "NET/IB/1/GDRDMA x3, NET/IB/0(2)/GDRDMA x1"]
    assert r.evidence[0].ring_summary_line == "gpu-p01:5407:5478 [0] NCCL INFO Connected all rings, use ring PXN 1 GDR 1"
    assert [(w.host, w.rank, w.text) for w in r.warnings] == [
        ("gpu-p02", 2, "NET/IB: read failed in ncclIbRoceGetVersionNum: Invalid argument")]


def test_nccl_debug_era_2_30_nvls_func_warn_and_pci_order() -> None:
    r = load("era_2_30")
    assert r.versions == {"2.30.7"}
    assert r.ranks["nvls"].tolist() == [True] * 4
    assert r.ranks["net_devices"].tolist() == ["mlx5_1:1/RoCE,mlx5_0:1/RoCE"] * 4
    # IbDev 0 is the first entry of the PCI-ordered list, mlx5_1
    assert [ev.gids[0].hca for ev in r.evidence] == ["mlx5_1", "mlx5_0", "mlx5_1", "mlx5_0"]
    assert r.ranks["gid_index"].tolist() == [3] * 4
    # gpu-d02 logs INFO with millisecond timestamps: still parsed
    assert r.ranks.loc[2, "host"] == "gpu-d02" and r.ranks.loc[2, "cross_node_channels"] == 4
    assert [(w.host, w.pid, w.rank, w.text) for w in r.warnings] == [
        ("gpu-d02", 7713, 3, "NET/IB : mlx5_0:1 GID table changed")]
    assert "(ncclIbAsyncThreadMain) NCCL WARN" in r.warnings[0].line


def test_nccl_debug_combined_mpirun_prefixes_bare_version_and_torn_line() -> None:
    r = load("combined/mpirun_tag_output.txt")
    assert rows(r) == [
        (0, "gpu-t01", 40211, 0, "2.19.3", "IB", "mlx5_0:1/RoCE", True, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, 3, "::ffff:10.20.1.71", 0),
        (1, "gpu-t02", 38890, 0, NA, "IB", "mlx5_0:1/RoCE", True, True, 4, "NET/IB/0/GDRDMA x4", False, False, False, 3, "::ffff:10.20.1.72", 0),
    ]
    # the bare version line (no prefix, <= 2.21) goes to rank 0
    assert r.evidence[0].version_line == "NCCL version 2.19.3+cuda12.3"
    # the device list of rank 1 was torn by a mid-line "[1,1]<stdout>:" tag and is healed
    assert r.evidence[1].devices_line == (
        "gpu-t02:38890:38961 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/RoCE [RO]; OOB eth0:10.10.0.72<0>")
    assert r.unknown_lines == 1  # the ssh "Permanently added" warning; nccl-tests lines are not unknown


def test_nccl_debug_combined_srun_plugin_and_collnet() -> None:
    r = load("combined/srun_label.txt")
    assert rows(r) == [
        (0, "gpu-s01", 52210, 0, "2.28.3", "IBext_v8", "mlx5_0:1/IB/SHARP", True, True, 4, "NET/IBext_v8/0/GDRDMA x4", False, False, True, NA, NA, 0),
        (1, "gpu-s02", 49377, 0, "2.28.3", "IBext_v8", "mlx5_0:1/IB/SHARP", True, True, 4, "NET/IBext_v8/0/GDRDMA x4", False, False, True, NA, NA, 0),
    ]
    assert r.evidence[0].env == {"NCCL_COLLNET_ENABLE": "1"}
    assert r.unknown_lines == 0


def test_nccl_debug_file_names_are_not_trusted() -> None:
    files = {p.name: p.read_text() for p in (DATA / "roce_gdr").iterdir()}
    renamed = {f"whatever-{i}.txt": text for i, text in enumerate(files.values())}
    pd.testing.assert_frame_equal(parse_debug_files(renamed).ranks, parse_debug_files(files).ranks)


def test_nccl_debug_files_and_combined_text_agree() -> None:
    # NCCL_DEBUG_FILE contents, concatenated with srun-style prefixes, read as one text give the same rows
    files = sorted((DATA / "roce_gdr").iterdir())
    text = "".join(f"{i}: " + line + "\n" for i, p in enumerate(files) for line in p.read_text().splitlines())
    pd.testing.assert_frame_equal(parse_debug_text(text).ranks, load("roce_gdr").ranks)


@pytest.mark.parametrize("prefix", [
    "[1,{i}]<stdout>:",  # Open MPI <= 4 --tag-output
    "Mon Nov  2 20:11:02 2026[1,{i}]<stderr>:",  # --timestamp-output --tag-output
    "[prterun-gpu-a01-4242@1,{i}][gpu-a01:4242]<stdout>: ",  # PRRTE --output tag-detailed
    "[{i}] ",  # bare rank tag
    "  {i}: ",  # srun -l with padding
], ids=["ompi-tag", "ompi-timestamp", "prrte-detailed", "bare-rank", "srun-padded"])
def test_nccl_debug_launcher_prefixes_are_stripped(prefix: str) -> None:
    files = sorted((DATA / "roce_gdr").iterdir())
    text = "".join(prefix.format(i=i) + line + "\n" for i, p in enumerate(files) for line in p.read_text().splitlines())
    r = parse_debug_text(text)
    pd.testing.assert_frame_equal(r.ranks, load("roce_gdr").ranks)
    assert r.unknown_lines == 0


def test_nccl_debug_bare_version_goes_to_rank_zero() -> None:
    # NCCL <= 2.21 prints the version bare on rank 0's stdout; fetched next to the debug files, it still counts
    files = {p.name: p.read_text() for p in (DATA / "gdr_missing").iterdir()}
    name = "nccl.gpu-e01.12001.log"
    files[name] = "\n".join(line for line in files[name].splitlines() if "NCCL version" not in line)
    assert parse_debug_files(files).ranks["nccl_version"].tolist() == [None] * 4
    files["stdout.txt"] = "NCCL version 2.21.5+cuda12.4\n"
    r = parse_debug_files(files)
    assert r.ranks["nccl_version"].tolist() == ["2.21.5", None, None, None]
    assert r.evidence[0].version_line == "NCCL version 2.21.5+cuda12.4"


def test_nccl_debug_no_nccl_lines_gives_empty_report() -> None:
    text = (DATA / "combined" / "mpirun_tag_output.txt").read_text()
    without = "\n".join(line for line in text.splitlines() if "NCCL" not in line)
    r = parse_debug_text(without)
    assert r.ranks.empty is False  # nccl-tests still names its ranks...
    assert r.nccl_lines == 0  # ...but no NCCL line proves anything
    empty = parse_debug_files({})
    assert empty.ranks.empty and list(empty.ranks.columns) == list(RANK_COLUMNS) and empty.nccl_lines == 0


def test_nccl_debug_rejects_bytes_naming_the_file() -> None:
    with pytest.raises(ParseError, match=r"nccl\.gpu-a01\.1\.log: expected the NCCL debug file as text"):
        parse_debug_files({"nccl.gpu-a01.1.log": b"gpu-a01:1:1 [0] NCCL INFO Using network IB"})  # type: ignore[dict-item]


def test_nccl_debug_decode_gid() -> None:
    assert decode_gid("80FE", "6C5B4AFEFF731C02") == "fe80::21c:73ff:fe4a:5b6c"
    assert decode_gid("0", "B01140AFFFF0000") == "::ffff:10.20.1.11"
    with pytest.raises(ParseError, match="GID"):
        decode_gid("xyz", "0")
    with pytest.raises(ParseError, match="GID"):
        decode_gid("1" * 17, "0")


def test_nccl_debug_env_modes() -> None:
    assert nccl_debug_env("off", "/tmp/clusterproof/r1") == {}
    on = {
        "NCCL_DEBUG": "INFO",
        "NCCL_DEBUG_SUBSYS": "INIT,BOOTSTRAP,ENV,NET,GRAPH",
        "NCCL_DEBUG_FILE": "/tmp/clusterproof/r1/nccl.%h.%p.log",
    }
    assert nccl_debug_env("on", "/tmp/clusterproof/r1") == on
    assert nccl_debug_env("on", "/tmp/clusterproof/r1/") == on
    assert nccl_debug_env("strict", "/tmp/clusterproof/r1") == {**on, "NCCL_NET": "IB"}
    assert nccl_debug_env("strict", "/tmp/clusterproof/r1", network="IBext_v8")["NCCL_NET"] == "IBext_v8"
    with pytest.raises(ValueError, match="off, on, strict"):
        nccl_debug_env("verbose", "/tmp/x")
    with pytest.raises(ValueError, match="scratch directory"):
        nccl_debug_env("on", "")
