"""Unit tests of clusterproof.nodes.facts: the command text and the parser on captured real outputs (tests/data/facts)."""

from __future__ import annotations

import math
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from clusterproof.errors import ParseError
from clusterproof.nodes.facts import (
    MARKER,
    SECTIONS,
    NodeFacts,
    facts_command,
    facts_frame,
    parse_facts,
    section_problems,
)
from clusterproof.results import NODE_COLUMNS

DATA = Path(__file__).parent / "data" / "facts"


def _load(name: str) -> str:
    return (DATA / name).read_text()


def test_facts_sandbox_node_parsed() -> None:
    f = parse_facts("node1", _load("sandbox-node1.txt"))
    assert f.node == "node1"
    assert f.hostname == "node1"
    assert f.kernel == "6.18.44-fc-v657"
    assert f.epoch == pytest.approx(1795556341.695426835)
    assert f.cpu_model == "AMD EPYC"
    assert f.cpus == 2  # from "online 0-1", not from the early-stopped cpuinfo count
    assert f.mem_gib == pytest.approx(24684092 / 2**20)
    assert f.nics == {"eth0": 1500, "lo": 65536}
    assert f.nic_state == {"eth0": "up", "lo": "unknown"}
    assert f.gpus == [] and f.gpu_model is None and f.gpu_error is None
    assert f.mpirun == "mpirun (Open MPI) 4.1.4"
    assert f.mpirun_path == "/usr/bin/mpirun"
    assert f.binaries == {"/usr/bin/mpirun": True, "/opt/nccl-tests/build/all_reduce_perf": False, "hostname": True}
    assert math.isnan(f.probe_rtt_s) and math.isnan(f.clock_offset_s)


def test_facts_sandbox_gid_table_has_roce_v2_ipv4_at_index_5() -> None:
    gids = parse_facts("node1", _load("sandbox-node1.txt")).gids
    assert list(gids["index"]) == [0, 1, 2, 3, 4, 5]
    row = gids[gids["index"] == 5].iloc[0]
    assert row["roce_version"] == "v2"
    assert row["ipv4"] == "192.168.81.11"
    assert row["netdev"] == "eth0"


def test_facts_moved_gid_is_seen_at_its_new_index() -> None:
    gids = parse_facts("node3", _load("sandbox-node3-gid-moved.txt")).gids
    v2_ipv4 = gids[(gids["roce_version"] == "v2") & gids["ipv4"].notna()]
    assert list(v2_ipv4["index"]) == [7]
    assert 5 not in set(gids["index"])


def test_facts_without_binaries_has_empty_binaries() -> None:
    f = parse_facts("node2", _load("sandbox-node2-nobinaries.txt"))
    assert f.binaries == {}
    assert f.hostname == "node2"


def test_facts_host_machine_without_infiniband() -> None:
    f = parse_facts("vm", _load("host-vm.txt"))
    assert f.hostname == "vm"
    assert f.gids.empty
    assert list(f.gids.columns) == ["dev", "port", "index", "gid", "ipv4", "roce_version", "netdev"]
    assert f.nics["eth0"] == 1400
    assert f.nic_state["ifb0"] == "down"
    assert len(f.nics) == 9


def test_facts_truncated_output_names_node_and_missing_sections() -> None:
    f = parse_facts("node7", _load("malformed-truncated.txt"))
    assert f.hostname  # the sections before the cut are still read
    for section in ("gpu", "gids"):
        assert f.section_errors[section].startswith(f"node7: facts section '{section}' missing")
        assert "cut off" in f.section_errors[section]
    assert "hostname" not in f.section_errors


def test_facts_garbage_section_names_node_and_section() -> None:
    f = parse_facts("node1", _load("malformed-mem.txt"))
    assert re.match(r"^node1: facts section 'mem': .*'lots of memory'", f.section_errors["mem"])
    assert math.isnan(f.mem_gib)  # unknown, not a made-up number
    assert list(f.section_errors) == ["mem"] and f.hostname and f.cpus >= 1


def test_facts_garbage_epoch_names_section() -> None:
    text = _load("sandbox-node1.txt").replace("1795556341.695426835", "+%s.%N")
    f = parse_facts("node1", text)
    assert f.section_errors["epoch"].startswith("node1: facts section 'epoch'")
    assert math.isnan(f.epoch)


def test_facts_gid_garbage_fails_only_the_gids_section() -> None:
    text = _load("sandbox-node1.txt").replace("mlx5_0\t1\t5\t", "mlx5_0\t1\tfive\t")
    f = parse_facts("node1", text)
    assert list(f.section_errors) == ["gids"]
    assert f.section_errors["gids"].startswith("node1: facts section 'gids': ")
    assert "five" in f.section_errors["gids"]  # the offending line is quoted
    assert f.gids.empty and f.hostname == "node1" and f.binaries
    assert section_problems(f, ["hostname", "bin"]) == []
    assert section_problems(f, ["gids"]) == [f.section_errors["gids"]]


def test_facts_undecodable_gid_file_fails_only_the_gids_section() -> None:
    """What the garbage-gids sandbox fault writes: bytes that are not UTF-8 (decoded with U+FFFD by the pool)."""
    raw = _load("sandbox-node1.txt").replace("0000:0000:0000:0000:0000:ffff:c0a8:510b", b"\xff\xfe\x00garbage\x9c".decode("utf-8", "replace"), 1)
    f = parse_facts("node1", raw)
    assert list(f.section_errors) == ["gids"] and "undecodable bytes" in f.section_errors["gids"]


@pytest.mark.parametrize("junk", ["", "\n", "::clusterproof-facts gids\n", "\x00\ufffd", "::clusterproof-facts end\n9 9 9"])
def test_facts_parser_is_total_on_cut_and_mangled_output(junk: str) -> None:
    """Cut the real output at every 23rd character and splice junk in: only ParseError or section errors."""
    text = _load("sandbox-node1.txt")
    for cut in range(0, len(text), 23):
        _check_total(text[:cut] + junk + text[cut + len(junk) :])


def _check_total(mangled: str) -> None:
    try:
        f = parse_facts("node1", mangled)
    except ParseError as e:
        assert str(e).startswith("node1: ")
        return
    for section, why in f.section_errors.items():
        assert why.startswith(f"node1: facts section {section!r}")


def test_facts_not_facts_output_at_all() -> None:
    with pytest.raises(ParseError, match=r"node1: facts output has no 'hostname'"):
        parse_facts("node1", "Permission denied (publickey).\n")


def test_facts_login_banner_before_output_is_ignored() -> None:
    f = parse_facts("node1", "Welcome to node1!\n" + _load("sandbox-node1.txt"))
    assert f.hostname == "node1"


def test_facts_command_is_one_sh_command_with_quoted_binaries() -> None:
    cmd = facts_command("/sys", binaries=["/opt/my tests/all_reduce_perf", "it's"])
    argv = shlex.split(cmd)
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3
    script = argv[2]
    for section in SECTIONS:
        assert f'echo "$M {section}"' in script
    assert "'/opt/my tests/all_reduce_perf'" in script
    assert "$(cat" not in script  # no subshell per file


def test_facts_command_rejects_newline_in_binary() -> None:
    with pytest.raises(ValueError):
        facts_command(binaries=["a\nb"])


def test_facts_command_runs_here_and_parses() -> None:
    """The command is real POSIX sh: run it on this machine with dash and parse the result."""
    out = subprocess.run(facts_command(binaries=["/bin/sh", "/no/such/binary"]), shell=True, capture_output=True, text=True, check=True)
    assert out.stderr == ""
    f = parse_facts("local", out.stdout)
    assert f.binaries == {"/bin/sh": True, "/no/such/binary": False}
    assert f.cpus >= 1 and f.mem_gib > 0 and "lo" in f.nics
    from clusterproof.nodes.health_command import SECTIONS as HEALTH_SECTIONS

    assert out.stdout.count(MARKER) == len(SECTIONS) + len(HEALTH_SECTIONS)


def test_facts_frame_has_node_columns() -> None:
    facts: dict[str, NodeFacts | Exception] = {
        "node1": parse_facts("node1", _load("sandbox-node1.txt")),
        "node2": parse_facts("node2", _load("sandbox-node2-nobinaries.txt")),
        "node9": ParseError("node9: garbage"),
    }
    df = facts_frame(facts)
    assert tuple(df.columns[: len(NODE_COLUMNS)]) == NODE_COLUMNS
    assert list(df["node"]) == ["node1", "node2"]
    assert df.loc[0, "nics"] == "eth0:1500,lo:65536"
    assert df.loc[0, "gpus"] == 0
