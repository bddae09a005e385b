"""Launcher failures in node names, the down-node check before a launch, and the cleanup finding of a run."""

from __future__ import annotations

from pathlib import Path

from clusterproof.findings import Criterion, Status
from clusterproof.inventory import Node
from clusterproof.network.collective import CollectiveResult, cleanup_findings
from clusterproof.network.launch_names import down_members, name_addresses

NODES = [Node("node01", "192.168.77.11"), Node("node02", "192.168.77.12"), Node("node13", "192.168.77.113")]

# What mpirun prints when a daemon cannot be started: the first line is OpenSSH's wording, the rest OpenMPI 4.1's
# help text; it names the host by the address mpirun was given.
ORTE = """ssh: connect to host 192.168.77.12 port 22: Connection refused
--------------------------------------------------------------------------
ORTE was unable to reliably start one or more daemons.
This usually is caused by:
"""


def test_addresses_are_named_and_prefixes_are_not_mistaken() -> None:
    out = name_addresses(ORTE + "peer 192.168.77.113:1024 and 192.168.77.1 (the host)", NODES)
    assert "host 192.168.77.12 (node02) port 22" in out
    assert "192.168.77.113 (node13):1024" in out
    assert "192.168.77.1 (the host)" in out and "192.168.77.1 (node" not in out


def test_down_members_name_each_down_node_once() -> None:
    down = {"node02": "node02: unreachable: timed out after 2s waiting for the SSH banner", "node09": "x"}
    assert down_members(["node01", "node02", "node13"], down) == ["node02: unreachable: timed out after 2s waiting for the SSH banner"]
    assert down_members(["node01"], down) == []


def _result(errors: list[str]) -> CollectiveResult:
    return CollectiveResult("j1", "all_reduce", ["node01", "node02"], "mpirun", 0, False, 1.0, Path("j1.log"), "", None,
                            cleanup_errors=errors)


def test_cleanup_finding_passes_only_when_nothing_is_left() -> None:
    ok = cleanup_findings(_result([]), "all_reduce-2nodes")
    assert [f.status for f in ok] == [Status.PASS] and ok[0].criterion is Criterion.REMOTE_CLEANUP
    bad = cleanup_findings(_result(["node02: /tmp/clusterproof/r/j1 is still there after two tries (Permission denied)"]), "all_reduce-2nodes")
    assert [(f.status, f.subject.node) for f in bad] == [(Status.FAIL, "node02")]
    assert "still there after two tries" in bad[0].message
