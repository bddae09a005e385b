"""One test per failure class of issue 10, each on real outputs from tests/data/real (or a real output mangled the
way launchers and dying processes mangle them). Every test here failed on the readers before issue 10."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from clusterproof.findings import RUN, Status
from clusterproof.network import gid_choice, nccl, nccl_debug, rdma
from clusterproof.network.failure_cause import failure_cause, failure_message
from clusterproof.network.nccl_debug_checks import STANDIN_REASON, transport_gate
from clusterproof.network.nccl_log_checks import check_installed_nccl, check_version_provable, check_warns
from clusterproof.nodes.facts import parse_facts

REAL = Path(__file__).parent / "data" / "real"
FACTS = Path(__file__).parent / "data" / "facts"


def real(path: str) -> str:
    return (REAL / path).read_text()


# -- NA rank -----------------------------------------------------------------------------------------------


def test_debug_log_without_rank_numbers_is_read() -> None:
    # NCCL 2.17.1 died before any rank line: the bare version line used to raise "boolean value of NA is ambiguous"
    report = nccl_debug.parse_debug_text(real("nccl_debug/nccl_issue941_v2.17.1_container_no_device_socket.txt"))
    assert len(report.ranks) == 1 and report.ranks["rank"].isna().all()
    assert report.ranks["net"].tolist() == ["Socket"]
    assert report.ranks["nccl_version"].tolist() == ["2.17.1"]


# -- old layout with a blank column ------------------------------------------------------------------------


def test_header_column_left_blank_in_every_row() -> None:
    run = nccl.parse(real("nccl_tests/superbench_nccl_alltoall.log"), binary="alltoall_perf")
    assert len(run.results) == 68 and run.errors == [] and run.complete
    assert set(run.results["redop"]) == {"none"} and run.header["blank columns"] == "redop"
    assert run.row(8589934592, "in-place")["busbw_gbs"] == 226.16


def test_blank_column_never_explains_a_cut_row() -> None:
    # An all_reduce row one token short is a cut row (its redop token "sum" would be read as a time): dropped.
    lines = real("nccl_tests/superbench_nccl_allreduce.log").splitlines(keepends=True)
    last = next(i for i, line in enumerate(lines) if line.lstrip().startswith("8589934592"))
    lines[last] = lines[last].rstrip().rsplit(None, 1)[0] + "\n"
    run = nccl.parse("".join(lines))
    assert 8589934592 not in run.sizes()
    assert any("partial row dropped" in e for e in run.errors)


# -- died on the first CUDA/NCCL call ----------------------------------------------------------------------


def test_run_that_died_on_its_first_nccl_call_is_nccl_tests_output() -> None:
    for name, line in [
        ("nccl_tests/rccl-tests_issue50_nccl_failure_first_call.txt", "Test NCCL failure common.cu:1285"),
        ("nccl_tests/nccl-tests_issue66_cuda_failure_common.cu730.txt", "Test CUDA failure common.cu:730"),
        ("nccl_tests/cscs-docs_nccl_failure_invalid_usage.txt", "Test NCCL failure common.cu:958"),
    ]:
        run = nccl.parse(real(name))
        assert not run.complete and run.results.empty
        assert any(line in e for e in run.errors), name
        assert line in failure_cause(real(name))[0]


def test_failure_message_starts_with_the_cause_not_the_mpirun_tail() -> None:
    text = real("nccl_tests/rccl-tests_rccl-issue876_rccl2.17.1_invalid_kernel_file.txt")
    message = failure_message(text)
    assert message.splitlines()[0] == "cause: catalyst-convoy: Test NCCL failure common.cu:1285 'unhandled cuda error'"
    assert "--- last lines ---" in message
    slots = failure_message(real("nccl_tests/gcm_sample_failure_output.txt"))
    assert slots.startswith("cause: There are not enough slots available in the system to satisfy the 16")
    assert failure_cause("# nThread 1\n# Avg bus bandwidth    : 1.5\n") == []


# -- srun -l ending in a bare rank tag ---------------------------------------------------------------------


def test_srun_label_output_ending_in_a_bare_tag() -> None:
    text = real("nccl_tests/gcm_sample_single_success_output.txt")
    labelled = "".join(f"0: {line}\n" for line in text.splitlines()) + " 0:\n"
    run = nccl.parse(labelled)
    assert run.errors == [] and run.complete and len(run.results) == 12
    assert nccl.parse(labelled.rstrip("\n")).complete  # and without the final line end


# -- two runs, interleaved sweeps, extra tokens ------------------------------------------------------------


def test_two_runs_in_one_text_are_flagged() -> None:
    one = real("nccl_tests/gcm_sample_single_success_output.txt")
    run = nccl.parse(one + one)
    assert any("a second run's header" in e for e in run.errors)
    both = nccl.parse(real("nccl_tests/nccl-tests_issue107_two_processes_both_rank0.txt"))
    assert any("a second run's header" in e for e in both.errors)


def test_interleaved_sweeps_are_flagged() -> None:
    lines = real("nccl_tests/gcm_sample_single_success_output.txt").splitlines(keepends=True)
    rows = [i for i, line in enumerate(lines) if line.strip()[:1].isdigit()]
    other = real("nccl_tests/gcm_sample_pairwise_success_output.txt").splitlines(keepends=True)
    other_rows = [line for line in other if line.strip()[:1].isdigit()]
    mixed = lines[: rows[0]] + [x for pair in zip(lines[rows[0] : rows[-1] + 1], other_rows, strict=True) for x in pair] + lines[rows[-1] + 1 :]
    run = nccl.parse("".join(mixed))
    assert any("size 33554432 B repeats" in e for e in run.errors)


def test_rows_with_extra_tokens_are_dropped_and_named() -> None:
    run = nccl.parse(real("nccl_tests/rccl_pr1352_two_runs_side_by_side.txt"))
    assert run.results.empty
    assert any("names its columns twice" in e for e in run.errors)
    # a row of 27 tokens under a 13-column header is dropped and named too
    text = real("nccl_tests/superbench_nccl_reduce.log")
    row = next(line for line in text.splitlines() if line.lstrip().startswith("1048576 "))
    joined = nccl.parse(text.replace(row + "\n", row + "  " + row + "\n", 1))
    assert any("26 tokens where the column header names 13" in e for e in joined.errors)
    assert 1048576 not in joined.sizes()


def test_rows_no_header_places_are_flagged() -> None:
    run = nccl.parse(real("nccl_tests/nccl_issue340_v2.6.4_rows_without_header_then_second_run.txt"))
    assert any("12 row(s) (lines 1-12) before any column header" in e for e in run.errors)
    assert not run.complete  # the second run never reached its footer


# -- NCCL < 2.7: Socket proven without a "Using network" line -----------------------------------------------


def test_pre_2_7_socket_from_no_device_and_socket_lines() -> None:
    report = nccl_debug.parse_debug_text(real("nccl_debug/nccl_issue226_v2.4.7_aws_socket_no_using_network.txt"))
    socket = report.ranks[report.ranks["host"].isin(["ip-172-31-10-182", "ip-172-31-15-113"])]
    assert socket["net"].tolist() == ["Socket", "Socket"]
    tagged = nccl_debug.parse_debug_text(real("nccl_debug/nccl_issue300_v2.5.6_tag-output_socket_lo.txt"))
    assert tagged.ranks["net"].tolist().count("Socket") == 3


# -- torn and cut lines -------------------------------------------------------------------------------------

GDR_LOG = "nccl_debug/nccl_issue707_a100_gdrdma_channels_busid.txt"


def test_channel_line_cut_after_the_device_is_no_evidence_of_missing_gdr() -> None:
    whole = real(GDR_LOG).rsplit("\n", 1)[0] + "\n"
    for cut in ("via NET/IB/4", "via NET/IB/4/GDR"):
        text = whole + "10-90-43-152:120890:121561 [1] NCCL INFO Channel 02 : 0[87000] -> 1[8d000] [receive] " + cut
        report = nccl_debug.parse_debug_text(text)
        assert report.ranks["gdr_all"].tolist() == [True] * 4, cut
        assert report.cut_lines == 1
    # A line that ends in "/GDR" with its line end is torn and never continued: an ending nobody recognises.
    report = nccl_debug.parse_debug_text(whole + "10-90-43-152:120890:121561 [1] NCCL INFO Channel 02 : 0[87000] -> "
                                         "1[8d000] [receive] via NET/IB/4/GDR\n")
    assert report.ranks["gdr_all"].tolist() == [True] * 4


def test_line_torn_under_tag_output_is_joined() -> None:
    lines = real(GDR_LOG).splitlines()[:-1]
    tagged = [f"[1,{line.split('[')[1][0]}]<stdout>:{line}" for line in lines]
    first = tagged[0]  # rank 0: "... [receive] via NET/IB/5/GDRDMA", torn at a read-chunk boundary
    torn = [first[:-3], tagged[1], "[1,0]<stdout>:" + first[-3:], *tagged[2:]]
    report = nccl_debug.parse_debug_text("\n".join(torn) + "\n")
    assert report.ranks["gdr_all"].tolist() == [True] * 4
    assert report.ranks["cross_node_channels"].tolist() == [4, 1, 4, 3]


def test_torn_version_line_is_not_a_missing_version_line() -> None:
    text = real("nccl_debug/nccl-tests_issue185_v2.19.3_roce_two_nodes.txt")
    assert "NCCL version 2.19.3+cuda12.3\n" in text
    torn = "\n".join(f"[1,0]<stdout>:{line}" for line in text.splitlines()[:-1]) + "\n"
    torn = torn.replace("[1,0]<stdout>:NCCL version 2.19.3+cuda12.3\n",
                        "[1,0]<stdout>:NCCL version 2.1\n[1,1]<stdout>:# other rank\n[1,0]<stdout>:9.3+cuda12.3\n")
    assert nccl_debug.parse_debug_text(torn).versions == {"2.19.3"}
    cut = text.split("NCCL version 2.1", 1)[0] + "NCCL version 2.1\n"  # the version line is the last one read
    report = nccl_debug.parse_debug_text(cut)
    assert report.torn_versions == ["NCCL version 2.1"] and not report.versions
    (finding,) = check_version_provable(report)
    assert finding.status is Status.NOT_TESTED and "torn or cut" in str(finding.reason)


def test_cut_last_line_is_never_read() -> None:
    report = nccl_debug.parse_debug_text(real("nccl_debug/tinygrad_pr22_v2.23.4_no_ib_socket_prefixed_version.txt"))
    assert "S" not in set(report.ranks["net"])  # "Using network S" was cut
    assert report.cut_lines == 1


# -- mixed versions before 2.22 ------------------------------------------------------------------------------


def test_versions_before_2_22_are_not_provable_from_the_logs() -> None:
    report = nccl_debug.parse_debug_text(real("nccl_debug/nccl_issue428_v2.8.3_libibverbs_warn_socket_with_tests_header.txt"))
    (finding,) = check_version_provable(report)
    assert finding.status is Status.NOT_TESTED
    assert "not provable from the logs" in str(finding.reason) and "1 of 2 ranks" in str(finding.reason)
    every = nccl_debug.parse_debug_text(real("nccl_debug/tinygrad_issue45_v2.26.5_roce_bond_trace.txt"))
    assert check_version_provable(every) == []


def test_installed_libnccl_proves_what_the_logs_cannot() -> None:
    text = (FACTS / "sandbox-node1.txt").read_text()
    lines = ["::clusterproof-facts nccl", "ld /opt/nccl/lib/libnccl.so.2.19.3", "cache /usr/lib/x86_64-linux-gnu/libnccl.so.2.21.5"]
    facts = parse_facts("node1", text.replace("::clusterproof-facts end", "\n".join(lines) + "\n::clusterproof-facts end"))
    assert (facts.nccl_version, facts.nccl_library) == ("2.19.3", "/opt/nccl/lib/libnccl.so.2.19.3")
    assert parse_facts("node1", text).nccl_version is None  # older facts output: no nccl section
    findings = check_installed_nccl({"node1": "2.19.3", "node2": "2.21.5", "node3": "2.21.5", "node4": None})
    status = {f.subject.name: f.status for f in findings}
    assert status == {"node1": Status.FAIL, "node2": Status.PASS, "node3": Status.PASS, "node4": Status.NOT_TESTED}
    assert "libnccl 2.19.3 installed, while 2 node(s) have 2.21.5" in findings[0].message


# -- GID choice by netdev ------------------------------------------------------------------------------------


def test_gid_by_netdev_skips_ports_of_other_rails() -> None:
    text = real("gids/nccl_issue1573_show_gids_macvlan_pod_index_4-7.txt")
    table = rdma.parse_show_gids(text.rsplit("\n", 1)[0] + "\n")
    assert gid_choice.choose_gid_index(table, netdev="net1") == 7
    assert gid_choice.gid_indices_by_hca(table, netdev="net2") == {"mlx5_1:1": 7}


# -- issue 9: no NCCL line on a real run; WARNs with debug off ------------------------------------------------


def test_no_nccl_line_on_a_real_run_says_what_happened() -> None:
    empty = nccl_debug.parse_debug_files({"node1/nccl.node1.1.log": "", "node2/nccl.node2.2.log": "\n"})
    gate = transport_gate(empty, debug="on", standin=False, n_files=2, subject=RUN)
    assert gate is not None and gate.status is Status.FAIL
    assert "no NCCL line in 2 debug files on a real cluster" in gate.message and "stand-in" not in gate.message
    standin = transport_gate(empty, debug="on", standin=True, n_files=2, subject=RUN)
    assert standin is not None and standin.status is Status.NOT_TESTED and standin.reason == STANDIN_REASON
    full = nccl_debug.parse_debug_text(real(GDR_LOG))
    assert transport_gate(full, debug="on", standin=False, n_files=4, subject=RUN) is None


def test_warns_in_stdout_are_judged_with_debug_off() -> None:
    failing = check_warns(real("nccl_tests/rccl-tests_rccl-issue876_rccl2.17.1_invalid_kernel_file.txt"), "logs/a.log")
    assert [f.status for f in failing] == [Status.FAIL]
    assert failing[0].message == "NCCL WARN: Cuda failure 'invalid kernel file'"
    assert failing[0].subject.node == "catalyst-convoy" and failing[0].evidence[0].path == "logs/a.log"
    assert "enqueue.cc:66 NCCL WARN" in failing[0].evidence[0].lines[0]
    quiet = check_warns(real("nccl_tests/superbench_nccl_allreduce.log"))
    assert [f.status for f in quiet] == [Status.PASS]
    silent = check_warns(real("nccl_tests/superbench_nccl_alltoall.log"))  # NCCL printed nothing
    assert [f.status for f in silent] == [Status.NOT_TESTED]
    version_only = check_warns(real("nccl_tests/gcm_sample_single_success_output.txt"))  # NCCL_DEBUG=VERSION
    assert [f.status for f in version_only] == [Status.NOT_TESTED]


def test_report_frame_keeps_na_ranks_last() -> None:
    report = nccl_debug.parse_debug_text(real("nccl_debug/nccl-tests_issue185_v2.19.3_roce_two_nodes.txt"))
    assert report.ranks["rank"].tolist()[0] == 1 and report.ranks["rank"].tolist()[1] is pd.NA
