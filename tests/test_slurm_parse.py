"""Slurm parsers and checks on real captured ``scontrol``/``sinfo`` outputs (tests/data/slurm, sources in its README),
the ``slurm:`` inventory section, the allocation's node list, the exclude list and srun's step options."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from clusterproof.errors import InventoryError, ParseError
from clusterproof.exclude import exclude_nodes, read_unfit_file
from clusterproof.findings import Status
from clusterproof.inventory import parse_inventory
from clusterproof.network.srun_job import cancel_command, srun_job_options
from clusterproof.nodes import slurm_checks
from clusterproof.nodes.slurm_remote import parse_query, split_labelled, srun_facts_command
from clusterproof.nodes.slurm_state import (
    parse_nodes,
    parse_partitions,
    parse_sinfo,
    parse_version,
    split_state,
)
from clusterproof.slurm_settings import SlurmSettings, allocation_inventory_doc

DATA = Path(__file__).parent / "data" / "slurm"
SANDBOX_ONE_LINE = (DATA / "sandbox_scontrol_show_node_-o_down_drain.txt").read_text()
SANDBOX_MULTI = (DATA / "sandbox_scontrol_show_node_down_drain.txt").read_text()
GPU02 = (DATA / "slurm_exporter-198_scontrol_show_node_gpu02_down_not_responding.txt").read_text()
PARTITION = (DATA / "sandbox_scontrol_show_partition_-o.txt").read_text()
SINFO = (DATA / "arjuna-69_sinfo_drng_fail_maint.txt").read_text()
BASE = {"ssh": {"key_file": "/k", "known_hosts": "/kh"}}


def test_scontrol_one_line_and_multi_line_give_the_same_nodes() -> None:
    one, multi = parse_nodes(SANDBOX_ONE_LINE), parse_nodes(SANDBOX_MULTI)
    assert one == multi
    assert sorted(one) == ["node01", "node02", "node03", "node04"]
    n3 = one["node03"]
    assert (n3.base_state, n3.flags, n3.reason) == ("DOWN", frozenset({"NOT_RESPONDING"}), "Not responding [root@2026-12-01T22:03:46]")
    assert one["node02"].state == "IDLE+DRAIN" and one["node02"].reason == "bad fan [root@2026-12-01T22:03:51]"
    assert one["node01"].problem is None and one["node01"].version == "22.05.8" and one["node01"].address == "192.168.131.11"
    assert one["node01"].gres == () and one["node01"].partitions == ("sandbox",)


def test_scontrol_real_gpu_node_down_not_responding_with_two_gres_types() -> None:
    gpu02 = parse_nodes(GPU02)["gpu02"]
    assert gpu02.gres == ("gpu:1080:7", "gpu:block:1") and gpu02.gres_count("gpu") == 8 and gpu02.gres_count("gpu", "1080") == 7
    assert gpu02.partitions == ("ifn", "dll") and gpu02.version == "23.11.4"
    assert gpu02.problem == "Slurm state DOWN+NOT_RESPONDING (down), reason: none given"


@pytest.mark.parametrize(("state", "base", "flags"), [
    ("IDLE", "IDLE", set()), ("DOWN*", "DOWN", {"NOT_RESPONDING"}), ("DOWN*+DRAIN", "DOWN", {"NOT_RESPONDING", "DRAIN"}),
    ("MIXED+DRAIN", "MIXED", {"DRAIN"}), ("IDLE~", "IDLE", {"POWERED_DOWN"}), ("ALLOCATED+COMPLETING", "ALLOCATED", {"COMPLETING"}),
])
def test_split_state(state: str, base: str, flags: set[str]) -> None:
    assert split_state(state) == (base, frozenset(flags))


def test_powered_down_or_allocated_nodes_are_fine_drained_and_failed_are_not() -> None:
    text = "NodeName=a State=IDLE~\nNodeName=b State=ALLOCATED\nNodeName=c State=MIXED+DRAIN Reason=NHC: Watchdog\nNodeName=d State=FAIL*\n"
    nodes = parse_nodes(text)
    assert [n for n, v in nodes.items() if v.problem] == ["c", "d"]
    assert nodes["c"].problem == "Slurm state MIXED+DRAIN (drained), reason: NHC: Watchdog"


def test_partition_and_sinfo_and_version() -> None:
    part = parse_partitions(PARTITION)["sandbox"]
    assert part.state == "UP" and part.nodes == ("node01", "node02", "node03", "node04") and part.default
    rows = parse_sinfo(SINFO)
    assert [(r.partition, r.state, len(r.nodes)) for r in rows][:2] == [("cpu", "drng@", 55), ("cpu", "fail*", 1)]
    assert [r.partition for r in rows if r.default] == ["debug"]
    assert rows[4].nodes == ("c020", "c021", "c022")
    assert parse_version("slurm-wlm 22.05.8\n") == "22.05.8" and parse_version("slurm 23.11.4") == "23.11.4"


@pytest.mark.parametrize("text", ["", "garbage\n", "NodeName=x Arch=x86_64\n", "NodeName=x State=???\n", "PARTITION AVAIL\n"])
def test_parsers_raise_parse_error_on_junk(text: str) -> None:
    with pytest.raises(ParseError):
        parse_nodes(text)
    with pytest.raises(ParseError):
        parse_sinfo(text)


def test_parsers_are_total_on_torn_and_mangled_real_outputs() -> None:
    """Property test (seeded, 600 cases): real outputs cut, torn apart and spliced with junk; a parser returns records
    the text names or raises ParseError, never anything else."""
    rng = random.Random(13)
    junk = ["", "=", "State=", "NodeName=", "Reason=", "\n", "\x00", "[", "]", "+", "*", "(null)", "ü", "  \t"]
    for _ in range(600):
        text = rng.choice([SANDBOX_ONE_LINE, SANDBOX_MULTI, GPU02, PARTITION, SINFO])
        a, b = sorted(rng.randrange(len(text) + 1) for _ in range(2))
        mangled = text[rng.randrange(a + 1):a] + rng.choice(junk) + text[b:] if rng.random() < 0.7 else text[:a] + text[b:]
        for parse in (parse_nodes, parse_partitions, parse_sinfo, parse_version):
            try:
                out = parse(mangled)  # type: ignore[operator]
            except ParseError:
                continue
            if parse is parse_nodes:  # never a node that the text does not name
                assert all(f"NodeName={name}" in mangled for name in out)


def test_query_output_is_split_into_nodes_partitions_and_version() -> None:
    text = SANDBOX_ONE_LINE + "::clusterproof-slurm partitions\n" + PARTITION + "::clusterproof-slurm version\nslurm-wlm 22.05.8\n"
    view = parse_query("node01", text)
    assert sorted(view.nodes) == ["node01", "node02", "node03", "node04"] and "sandbox" in view.partitions
    assert view.controller_version == "22.05.8" and view.errors == []


def test_node_state_findings_fail_with_slurms_reason_and_pass_the_rest() -> None:
    nodes = parse_nodes(SANDBOX_ONE_LINE)
    found = slurm_checks.node_state_findings(nodes, ["node01", "node02", "node03", "node09"], source="logs/slurm-scontrol.txt")
    by = {f.subject.name: f for f in found}
    assert by["node01"].status is Status.PASS
    assert by["node03"].status is Status.FAIL and by["node03"].subject.node == "node03"
    assert by["node03"].message == "node03: Slurm state DOWN+NOT_RESPONDING (down), reason: Not responding [root@2026-12-01T22:03:46]"
    assert by["node03"].evidence[0].path == "logs/slurm-scontrol.txt"
    assert "drained" in by["node02"].message and "bad fan" in by["node02"].message
    assert by["node09"].message == "node09: not a Slurm node (scontrol show node does not list it)"


def test_partition_gres_and_version_findings() -> None:
    parts = parse_partitions(PARTITION)
    assert [f.status for f in slurm_checks.partition_findings(parts, "sandbox", ["node01", "node04"])] == [Status.PASS]
    missing = slurm_checks.partition_findings(parts, "gpu", ["node01"])
    assert missing[0].status is Status.FAIL and "partition 'gpu' does not exist (partitions: sandbox)" in missing[0].message
    outside = slurm_checks.partition_findings(parts, "sandbox", ["node01", "node07"])
    assert [(f.subject.name, f.status) for f in outside] == [("node07", Status.FAIL)]
    gpu = parse_nodes(GPU02)
    assert slurm_checks.gres_findings(gpu, "gpu:8", ["gpu02"])[0].status is Status.PASS
    short = slurm_checks.gres_findings(gpu, "gpu:1080:8", ["gpu02"])[0]
    assert short.status is Status.FAIL and short.message == "gpu02: Gres=gpu:1080:7,gpu:block:1, expected gpu:1080:8 (7 < 8)"
    assert slurm_checks.gres_findings(gpu, None, ["gpu02"])[0].status is Status.NOT_TESTED
    nodes = parse_nodes(SANDBOX_ONE_LINE)
    assert {f.status for f in slurm_checks.version_findings(nodes, "22.05.8", list(nodes))} == {Status.PASS}
    old = slurm_checks.version_findings(nodes, "23.02.1", ["node01"])[0]
    assert old.status is Status.FAIL and old.message == "node01: slurmd 22.05.8, controller 23.02.1"


def test_slurm_section_is_validated_with_field_names() -> None:
    doc = {**BASE, "nodes": [{"name": "n1", "host": "h"}],
           "slurm": {"partition": "gpu nodes", "constraints": "h100&ib", "gres": "gpu8", "mpi": "pmi3", "acount": "x"}}
    with pytest.raises(InventoryError) as e:
        parse_inventory(doc, "my-cluster.yaml")
    text = str(e.value)
    assert "my-cluster.yaml: slurm.partition: 'gpu nodes' is not a Slurm name" in text
    assert "slurm.gres: 'gpu8' is not a GRES like gpu:8 or gpu:h100:8" in text
    assert "slurm.mpi: expected one of pmix, pmi2, pmix_v4, got 'pmi3'" in text
    assert "slurm.acount: unknown key (did you mean 'account'?)" in text
    ok = parse_inventory({**BASE, "nodes": [{"name": "n1", "host": "h"}],
                          "slurm": {"partition": "gpu", "account": "ml", "reservation": "maint", "constraints": "h100&ib"}})
    assert ok.slurm is not None and ok.slurm.srun_options() == ["--partition=gpu", "--account=ml", "--reservation=maint", "--constraint=h100&ib"]


def test_nodes_from_the_allocation_are_expanded_with_clustershell() -> None:
    env = {"SLURM_JOB_NODELIST": "gpu[01-03,07]", "SLURM_JOB_ID": "4242", "SLURM_JOB_PARTITION": "gpu"}
    inv = parse_inventory({**BASE, "slurm": {"from_allocation": True, "slots_per_node": 8}}, "nightly.yaml", environ=env)
    assert [n.name for n in inv.nodes] == ["gpu01", "gpu02", "gpu03", "gpu07"] and {n.slots for n in inv.nodes} == {8}
    assert inv.slurm is not None and inv.slurm.job_id == "4242" and "--jobid=4242" in inv.slurm.srun_options()
    with pytest.raises(InventoryError, match="slurm.from_allocation: SLURM_JOB_NODELIST is not set: run inside an allocation"):
        parse_inventory({**BASE, "slurm": {"from_allocation": True}}, "nightly.yaml", environ={})
    with pytest.raises(InventoryError, match="nodes: given together with slurm.from_allocation"):
        parse_inventory({**BASE, "nodes": [{"name": "a", "host": "a"}], "slurm": {"from_allocation": True}}, "x.yaml", environ=env)
    doc = allocation_inventory_doc({**env, "USER": "alice"})
    cli = parse_inventory(doc, "--cluster slurm", environ=env)
    assert cli.name == "slurm-4242" and cli.nccl_tests.launcher == "srun" and cli.ssh.user == "alice"
    assert cli.slurm is not None and cli.slurm.partition == "gpu" and len(cli.nodes) == 4


def test_exclude_list_from_the_unfit_file(tmp_path: Path) -> None:
    (tmp_path / "unfit_nodes.txt").write_text("gpu03\tgpu03: Slurm state DOWN+NOT_RESPONDING (down); XID 79\ngpu09\tnot in this run\n")
    assert read_unfit_file(tmp_path) == {"gpu03": "gpu03: Slurm state DOWN+NOT_RESPONDING (down); XID 79", "gpu09": "not in this run"}
    env = {"SLURM_JOB_NODELIST": "gpu[01-04]"}
    inv = parse_inventory({**BASE, "slurm": {"from_allocation": True}}, "n.yaml", environ=env)
    left = exclude_nodes(inv, list(read_unfit_file(tmp_path / "unfit_nodes.txt")))
    assert [n.name for n in left.nodes] == ["gpu01", "gpu02", "gpu04"]
    assert left.slurm is not None and left.slurm.exclude == ("gpu03",) and "--exclude=gpu03" in left.slurm.srun_options()
    (tmp_path / "bad.txt").write_text("gpu03 no tab here\n")
    with pytest.raises(InventoryError, match=r"bad.txt.*line 1: expected 'node<TAB>reasons'"):
        read_unfit_file(tmp_path / "bad.txt")
    with pytest.raises(InventoryError, match="leaves no node to test"):
        exclude_nodes(inv, ["gpu01", "gpu02", "gpu03", "gpu04"])
    with pytest.raises(InventoryError, match="cannot read the exclude list"):
        read_unfit_file(tmp_path / "missing")


def test_srun_step_options_and_cancel_command() -> None:
    s = SlurmSettings(partition="gpu", exclude=("n3", "n4"))
    assert srun_job_options(s, "all_reduce-4n-abc", 120) == [
        "--label", "--kill-on-bad-exit=1", "--time=3", "--job-name=clusterproof-all_reduce-4n-abc", "--partition=gpu", "--exclude=n[3-4]"]
    cmd = cancel_command("all_reduce-4n-abc")
    assert "scancel --name=clusterproof-all_reduce-4n-abc" in cmd and "squeue -h -s -o '%i %j'" in cmd


def test_srun_facts_are_split_per_node_by_srun_labels() -> None:
    cmd = srun_facts_command(SlurmSettings(partition="gpu"), ["n1", "n2"])
    assert cmd.startswith("srun -N 2 --ntasks-per-node=1 --nodelist=n1,n2 --label --partition=gpu")
    out = "1: ::clusterproof-node n2\n0: ::clusterproof-node n1\n0: a\n1: b\n0: c\n"
    assert split_labelled(out) == {"n1": "a\nc", "n2": "b"}
    with pytest.raises(ParseError, match="srun task 0 printed no node name"):
        split_labelled("0: hello\n")


def test_cli_knows_the_slurm_sandbox_and_its_faults() -> None:
    from clusterproof.cli import build_parser

    p = build_parser()
    assert p.parse_args(["sandbox", "up", "--slurm"]).slurm is True
    args = p.parse_args(["sandbox", "fault", "drain", "node02", "bad", "fan"])
    assert (args.kind, args.node, " ".join(args.value)) == ("drain", "node02", "bad fan")
    for kind in ("stop-slurmd", "start-slurmd", "resume"):
        assert p.parse_args(["sandbox", "fault", kind, "node03"]).kind == kind
    assert p.parse_args(["demo", "--no-slurm"]).no_slurm is True


def test_sandbox_inventory_with_slurm_uses_srun_in_the_sandbox_partition(tmp_path: Path) -> None:
    from clusterproof.sandbox.cluster import _inventory_doc, _plan
    from clusterproof.sandbox.slurm import PARTITION, SlurmPorts, _conf

    c = _plan(4, tmp_path / "sbx", "192.168.139", "c13_u")
    inv = parse_inventory(_inventory_doc(c, None, with_slurm=True), "sandbox.yaml")
    assert inv.nccl_tests.launcher == "srun" and inv.slurm is not None and inv.slurm.partition == PARTITION
    conf = _conf(c, SlurmPorts(21398, 21399))
    assert "SlurmctldHost=node01(192.168.139.11)" in conf and "SlurmctldPort=21398" in conf and "SlurmdPort=21399" in conf
    assert f"PartitionName={PARTITION} Nodes=ALL" in conf and conf.count("\nNodeName=") == 4
    assert "MailProg=/bin/true" in conf and f"AuthInfo=socket={c.state_dir}/munge/munge.socket.2" in conf
