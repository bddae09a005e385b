"""clusterproof.network.nccl_debug_checks: the transport verdicts on every fixture run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusterproof.findings import Criterion, Finding, Status, Subject
from clusterproof.network import nccl_debug_checks as checks
from clusterproof.network.nccl_debug import TransportReport, parse_debug_files, parse_debug_text
from clusterproof.network.nccl_debug_checks import (
    DEBUG_OFF_REASON,
    STANDIN_REASON,
    transport_gate,
    transport_table,
)


@dataclass(frozen=True)
class Failure:
    """A failing finding as these tests read it: rank, host, message and the quoted lines joined."""

    rank: int | None
    host: str
    message: str
    evidence: str


def _failures(check: Callable[..., list[Finding]]) -> Callable[..., list[Failure]]:
    def run(*args: Any, **kwargs: Any) -> list[Failure]:
        found = check(*args, **kwargs)
        assert found and all(f.criterion is Criterion.TRANSPORT for f in found)  # never silent
        out = []
        for f in found:
            if f.status is not Status.FAIL:
                continue
            name = f.subject.name if f.subject.kind == "rank" else ""
            host, _, rank = name.rpartition("/rank")
            lines = "\n".join(line for e in f.evidence for line in e.lines)
            out.append(Failure(int(rank) if rank.isdigit() else None, host, f.message, lines))
        return out
    return run


check_network = _failures(checks.check_network)
check_gdr = _failures(checks.check_gdr)
check_gid = _failures(checks.check_gid)
check_same_version = _failures(checks.check_same_version)
check_nvls = _failures(checks.check_nvls)
SUBJECT = Subject("node_set", "node01,node02")


def no_nccl_reason(report: TransportReport) -> str | None:
    gate = transport_gate(report, debug="on", standin=False, n_files=4, subject=SUBJECT)
    return None if gate is None else gate.message

DATA = Path(__file__).parent / "data" / "nccl_debug"
HEALTHY = ["roce_gdr", "ib", "two_gpus_per_process", "era_2_7", "era_2_14", "era_2_26", "era_2_30",
           "combined/mpirun_tag_output.txt", "combined/srun_label.txt"]
ROCE_HEALTHY = ["roce_gdr", "two_gpus_per_process", "era_2_14", "era_2_26", "era_2_30", "combined/mpirun_tag_output.txt"]


def load(name: str) -> TransportReport:
    path = DATA / name
    if path.is_file():
        return parse_debug_text(path.read_text())
    return parse_debug_files({p.name: p.read_text() for p in sorted(path.iterdir())})


def who(findings: list[Failure]) -> list[tuple[int | None, str]]:
    return [(f.rank, f.host) for f in findings]


@pytest.mark.parametrize("name", HEALTHY, ids=lambda n: n.replace("/", "-").replace(".txt", ""))
def test_nccl_transport_healthy_runs_pass(name: str) -> None:
    r = load(name)
    assert no_nccl_reason(r) is None
    assert check_network(r, "IB") == []
    passes = checks.check_network(r, "IB", evidence_path="logs/job/")
    assert {f.status for f in passes} == {Status.PASS} and len(passes) == len(r.ranks)  # a pass per rank judged
    assert all(f.evidence[0].path == "logs/job/" for f in passes)
    assert check_gdr(r) == []
    assert check_same_version(r) == []
    assert check_gid(r, 3) == []  # IB link layer ranks are not judged on GIDs
    assert check_nvls(r, 4) == []


@pytest.mark.parametrize("name", ROCE_HEALTHY, ids=lambda n: n.replace("/", "-").replace(".txt", ""))
def test_nccl_transport_gid_other_index_fails(name: str) -> None:
    findings = check_gid(load(name), 5)
    assert findings and all("GID index 3, expected 5" in f.message for f in findings)
    assert all("NCCL INFO NET/IB:" in f.evidence and "GID 3 (" in f.evidence for f in findings)


def test_nccl_transport_socket_fallback_names_ranks_and_reason() -> None:
    findings = check_network(load("socket_fallback"), "IB")
    assert who(findings) == [(0, "gpu-b01"), (1, "gpu-b01"), (2, "gpu-b02"), (3, "gpu-b02")]
    assert findings[0].message == ("gpu-b01 rank 0 (pid 31337): NCCL used network Socket, expected IB "
                                   "(NCCL said: Failed to open libibverbs.so[.1])")
    assert findings[3].message == ("gpu-b02 rank 3 (pid 29021): NCCL used network Socket, expected IB "
                                   "(NCCL said: NET/IB : No device found.)")
    assert findings[3].evidence == ("gpu-b02:29021:29092 [1] NCCL INFO Using network Socket\n"
                                    "gpu-b02:29021:29092 [1] NCCL INFO NET/IB : No device found.")
    assert check_network(load("socket_fallback"), "Socket") == []


def test_nccl_transport_socket_fallback_has_no_gdr() -> None:
    findings = check_gdr(load("socket_fallback"))
    assert who(findings) == [(0, "gpu-b01"), (1, "gpu-b01"), (2, "gpu-b02"), (3, "gpu-b02")]
    assert "4 of 4 cross-node channels without GPUDirect RDMA" in findings[0].message
    assert "via NET/Socket/0" in findings[0].evidence


def test_nccl_transport_ib_disabled_by_env_is_the_reason() -> None:
    # NCCL_IB_DISABLE=1 (user env or /etc/nccl.conf) skips IB without any NET/IB line
    files = {p.name: p.read_text().replace("NCCL INFO Failed to open libibverbs.so[.1]",
                                           "NCCL INFO NCCL_IB_DISABLE set by environment to 1.")
             for p in (DATA / "socket_fallback").iterdir()}
    findings = check_network(parse_debug_files(files))
    assert findings[1].message == ("gpu-b01 rank 1 (pid 31338): NCCL used network Socket, expected IB "
                                   "(NCCL said: NCCL_IB_DISABLE set by environment to 1.)")


def test_nccl_transport_strict_mode_failure_is_reported() -> None:
    findings = check_network(load("strict_no_verbs"), "IB")
    assert who(findings) == [(None, "gpu-n02"), (None, "gpu-n02")]
    assert findings[0].message == ("gpu-n02 rank ? (pid 23305): no 'Using network' line, NCCL picked no network "
                                   "(NCCL said: Failed to open libibverbs.so[.1])")
    assert findings[0].evidence.endswith("plugin/net.cc:334 NCCL WARN Failed to initialize any NET plugin")


def test_nccl_transport_gdr_missing_on_one_node() -> None:
    findings = check_gdr(load("gdr_missing"))
    assert who(findings) == [(2, "gpu-e02"), (3, "gpu-e02")]
    assert findings[1].message == ("gpu-e02 rank 3 (pid 15361): 4 of 4 cross-node channels without GPUDirect RDMA "
                                   "(NET/IB : GPU Direct RDMA Disabled for HCA 1 'mlx5_1')")
    assert findings[1].evidence == (
        "gpu-e02:15361:15450 [1] NCCL INFO Channel 00/0 : 3[1] -> 0[0] [send] via NET/IB/1\n"
        "gpu-e02:15361:15432 [1] NCCL INFO NET/IB : GPU Direct RDMA Disabled for HCA 1 'mlx5_1'")
    assert check_network(load("gdr_missing")) == []


def test_nccl_transport_link_local_gid_fails() -> None:
    r = load("link_local_gid")
    findings = check_gid(r, 3)
    assert who(findings) == [(2, "gpu-f02"), (3, "gpu-f02")]
    assert findings[0].message == ("gpu-f02 rank 2 (pid 3702): mlx5_0 port 1 uses GID index 0, expected 3; "
                                   "link-local GID fe80::1c:73ff:fe9e:7a2 (not routable across L3)")
    assert "GID 0 (80FE/A2079EFEFF731C00)" in findings[0].evidence
    # even when the detected index is 0, a link-local GID still fails (and gpu-f01 now has the wrong index)
    zero = check_gid(r, 0)
    assert who(zero) == [(0, "gpu-f01"), (1, "gpu-f01"), (2, "gpu-f02"), (3, "gpu-f02")]
    assert zero[2].message.endswith("uses link-local GID fe80::1c:73ff:fe9e:7a2 (not routable across L3)")


def test_nccl_transport_mixed_versions_fail() -> None:
    findings = check_same_version(load("mixed_versions"))
    assert findings[0] == Failure(
        2, "gpu-g02", "gpu-g02 rank 2 (pid 2877): NCCL 2.26.2, while 2 rank(s) run NCCL 2.27.3",
        "gpu-g02:2877:2877 [0] NCCL INFO NCCL version 2.26.2+cuda12.8")
    refused = findings[1:]
    assert sorted(who(refused), key=str) == [(0, "gpu-g01"), (1, "gpu-g01"), (2, "gpu-g02")]
    assert all("NCCL refused the mix: Mismatched NCCL version detected" in f.message for f in refused)
    # the run never connected: no GID to judge, and no rank claims a GID
    assert check_gid(load("mixed_versions"), 3) == []


def test_nccl_transport_missing_version_on_new_nccl_fails() -> None:
    # from 2.22 every process prints its version; drop one process's line and the check notices
    files = {p.name: p.read_text() for p in (DATA / "roce_gdr").iterdir()}
    name = "nccl.gpu-a02.18803.log"
    files[name] = "\n".join(line for line in files[name].splitlines() if "NCCL version" not in line)
    findings = check_same_version(parse_debug_files(files))
    assert who(findings) == [(3, "gpu-a02")]
    assert findings[0].message == "gpu-a02 rank 3 (pid 18803): no NCCL version line (NCCL 2.23.4 prints it on every process)"


def test_nccl_transport_nvls_on_two_nodes_flagged() -> None:
    r = load("era_2_30")
    findings = check_nvls(r, 2)
    assert who(findings) == [(0, "gpu-d01"), (1, "gpu-d01"), (2, "gpu-d02"), (3, "gpu-d02")]
    assert "NVLS in use on a 2-node run" in findings[0].message
    assert findings[0].evidence.splitlines()[0].endswith("2 coll channels, 2 collnet channels, 2 nvls channels, "
                                                         "2 p2p channels, 2 p2p channels per peer")
    assert check_nvls(r, 4) == []
    assert check_nvls(load("roce_gdr"), 2) == []


def test_nccl_transport_expected_plugin() -> None:
    srun = load("combined/srun_label.txt")
    assert check_network(srun, "IBext_v8") == []
    assert check_network(srun, "IB") == []  # the HPC-X plugin drives the same verbs
    assert who(check_network(srun, "IBext_v9")) == [(0, "gpu-s01"), (1, "gpu-s02")]
    # internal IB while the plugin was expected: the reason is the plugin NCCL could not find
    missing = check_network(load("roce_gdr"), "IBext_v8")
    assert len(missing) == 4
    assert missing[0].message == ("gpu-a01 rank 0 (pid 21437): NCCL used network IB, expected IBext_v8 (NCCL said: "
                                  "NET/Plugin: Could not find: libnccl-net.so. Using internal network plugin.)")


def test_nccl_transport_empty_report_proves_nothing() -> None:
    r = parse_debug_files({})
    assert no_nccl_reason(r) == "no NCCL line in 4 debug files on a real cluster (NCCL_DEBUG_FILE not honoured, the environment lost on the way, or no NCCL in the binary)"
    for findings in (check_network(r), check_gdr(r), check_gid(r, 3), check_same_version(r), check_nvls(r, 2)):
        assert [f.message for f in findings] == ["no NCCL rank in the debug logs: nothing proven"]


def test_nccl_transport_no_nccl_lines_reason() -> None:
    text = (DATA / "combined" / "mpirun_tag_output.txt").read_text()
    standin_like = "\n".join(line for line in text.splitlines() if "NCCL" not in line)
    assert (no_nccl_reason(parse_debug_text(standin_like)) or "").startswith("no NCCL line in 4 debug files on a real cluster")
    assert no_nccl_reason(parse_debug_text(text)) is None


def test_transport_gate_says_why_the_transport_was_not_judged() -> None:
    """debug: off and the stand-in are not tested with their own reason; a silent real cluster fails, and is never
    blamed on the stand-in."""
    empty = parse_debug_files({})
    off = transport_gate(empty, debug="off", standin=False, n_files=0, subject=SUBJECT)
    assert off is not None and off.status is Status.NOT_TESTED and off.reason == DEBUG_OFF_REASON
    assert off.reason.startswith("debug: off: NCCL's logs were not requested")
    stand = transport_gate(empty, debug="on", standin=True, n_files=0, subject=SUBJECT)
    assert stand is not None and stand.status is Status.NOT_TESTED and stand.reason == STANDIN_REASON
    assert stand.reason.startswith("stand-in: no NCCL")
    real = transport_gate(empty, debug="strict", standin=False, n_files=1, subject=SUBJECT, evidence_path="logs/j/")
    assert real is not None and real.status is Status.FAIL and "stand-in" not in real.message
    assert real.message.startswith("no NCCL line in 1 debug file on a real cluster") and real.evidence[0].path == "logs/j/"
    assert transport_gate(load("roce_gdr"), debug="on", standin=False, n_files=4, subject=SUBJECT) is None


def test_nccl_transport_gdr_not_provable_without_channels() -> None:
    findings = check_gdr(load("mixed_versions"))
    assert [f.message for f in findings] == [
        "no cross-node channel line on any rank: GPUDirect RDMA not provable "
        "(single node, or INIT missing from NCCL_DEBUG_SUBSYS)"]


def test_nccl_transport_table_healthy_has_no_odd_rows() -> None:
    table = transport_table(load("roce_gdr"))
    assert list(table.columns) == ["rank", "host", "network", "devices", "gdr", "gid", "version", "odd", "why"]
    assert table.values.tolist()[1] == [1, "gpu-a01", "IB", "mlx5_0:1/RoCE,mlx5_1:1/RoCE", True,
                                        "3 ::ffff:10.20.2.11", "2.23.4", False, ""]
    assert not table["odd"].any()
    assert str(table["odd"].dtype) == "bool"


def test_nccl_transport_table_marks_odd_rows() -> None:
    gdr = transport_table(load("gdr_missing"))
    assert gdr["odd"].tolist() == [False, False, True, True]
    assert gdr.loc[2, "why"] == "GDR differs from most ranks, no GDR"
    gid = transport_table(load("link_local_gid"))
    assert gid["odd"].tolist() == [False, False, True, True]
    assert gid.loc[3, "why"] == "GID index differs from most ranks, link-local GID"
    assert gid.loc[3, "gid"] == "0 fe80::1c:73ff:fe9e:7a3"
    sock = transport_table(load("socket_fallback"))
    # every rank fell back: the majority is no excuse, and per-host socket addresses are not a difference
    assert sock["why"].tolist() == ["sockets, no GDR"] * 4
    versions = transport_table(load("mixed_versions"))
    assert versions.loc[2, "why"] == "version differs from most ranks, 1 WARN"
    assert transport_table(load("roce_gdr"), expected_gid_index=4)["why"].tolist() == ["GID index is not 4"] * 4
    assert transport_table(load("ib"), expected_network="IBext_v8")["why"].tolist() == ["network is not IBext_v8"] * 4
    assert transport_table(parse_debug_files({})).empty


