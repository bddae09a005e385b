"""The cluster file: the example loads, every problem is reported with its field, typos are errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from clusterproof.errors import InventoryError
from clusterproof.inventory import load_inventory, parse_inventory, read_env_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "my-cluster.yaml"


def minimal(**extra: object) -> dict:
    doc: dict = {
        "nodes": [{"name": "node01", "host": "10.0.0.1"}, {"name": "node02", "host": "10.0.0.2"}],
        "ssh": {"key_file": "/k", "known_hosts": "/kh"},
    }
    doc.update(extra)
    return doc


def problems_of(doc: object) -> list[str]:
    with pytest.raises(InventoryError) as e:
        parse_inventory(doc, "bad.yaml")
    return e.value.problems


def test_example_inventory_loads_with_parsed_values() -> None:
    inv = load_inventory(EXAMPLE)
    assert inv.name == "gpu-cluster-a"
    assert [(n.name, n.host, n.slots, n.user, n.port) for n in inv.nodes] == [
        ("node01", "10.1.1.5", 8, "ubuntu", 22),
        ("node02", "10.1.1.6", 8, "ubuntu", 22),
    ]
    assert inv.ssh.jump_host is not None and inv.ssh.jump_host.host == "bastion.example.com"
    assert inv.network.hcas == ("mlx5_0", "mlx5_1") and inv.network.gid_index == "auto"
    sweep = inv.nccl_tests.sweep
    assert (sweep.min_bytes, sweep.max_bytes, sweep.iters) == (512 << 20, 8 << 30, 200)
    assert sweep.sizes() == [512 << 20, 1 << 30, 2 << 30, 4 << 30, 8 << 30]
    assert inv.nccl_tests.mca == {"coll": "^hcoll", "pml": "ob1", "btl": "tcp,self"}
    assert inv.nccl_tests.debug == "on"
    assert inv.storage is not None and inv.storage.admin_access_key_env == "CP_RGW_ADMIN_ACCESS_KEY"


def test_thresholds_step_by_size_and_prefer_exact_node_count() -> None:
    th = load_inventory(EXAMPLE).thresholds
    assert th.lookup("all_reduce", 4, 512 << 20) is None  # below the smallest key: not gated
    assert th.lookup("all_reduce", 4, 1 << 30) == 300.0
    assert th.lookup("all_reduce", 4, 4 << 30) == 300.0  # applies up to the next key
    assert th.lookup("all_reduce", 4, 8 << 30) == 360.0
    assert th.lookup("all_reduce", 2, 8 << 30) == 330.0  # exact node count beats "*"
    assert th.lookup("all_reduce", 2, 1 << 30) is None  # the exact table has no 1G key
    assert th.lookup("all_gather", 4, 8 << 30) is None


def test_every_problem_is_reported_with_its_field() -> None:
    doc = {
        "nodes": [{"name": "node01", "host": "h1"}, {"name": "node01"}, {"name": "bad name", "host": "h1", "slots": 0}],
        "ssh": {"usre": "x", "key_file": "/k"},
        "nccl_tests": {"sweep": {"min_bytes": "8Q", "max_bytes": "1M", "iters": "many"}, "collectives": ["all_reduec"], "debug": "loud"},
        "thresholds": {"all_reduce": {"*": {"1G": "fast"}}, "tolerance_pct": 150},
        "storage": {"issuers": ["r2"], "admin_secret_key_env": "my secret!"},
        "bogus": 1,
    }
    probs = problems_of(doc)
    expected = [
        "bogus: unknown key",
        "ssh.usre: unknown key (did you mean 'user'?)",
        "ssh.known_hosts: missing (strict_host_keys is true",
        "nodes[1].host: missing",
        "nodes[1].name: duplicate node name 'node01' (also nodes[0])",
        "nodes[2].name: 'bad name' is not a valid name",
        "nodes[2].slots: must be >= 1, got 0",
        "nodes[2].host: duplicate address h1:22 (also nodes[0])",
        "nccl_tests.sweep.min_bytes: not a size: '8Q'",
        "nccl_tests.sweep.iters: expected an integer, got 'many'",
        "nccl_tests.collectives: unknown collective 'all_reduec'",
        "nccl_tests.debug: expected one of off, on, strict, got 'loud'",
        "thresholds.tolerance_pct: must be below 100",
        "thresholds.all_reduce.*.1G: expected a bus bandwidth in GB/s",
        "storage.endpoint: missing",
        "storage.issuers: unknown issuer kind 'r2'",
        "storage.admin_secret_key_env: 'my secret!' is not an environment variable name",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in probs), f"no problem starting with {want!r} in:\n" + "\n".join(probs)


def test_error_message_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text(yaml.safe_dump({"nodes": [{"name": "node01"}]}))
    with pytest.raises(InventoryError) as e:
        load_inventory(bad)
    assert f"{bad}: nodes[0].host: missing" in str(e.value)


def test_not_yaml_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("nodes: [\n  - name: a\n   host: : :\n")
    with pytest.raises(InventoryError, match=r"broken.yaml: line \d+, column \d+: not valid YAML"):
        load_inventory(bad)
    with pytest.raises(InventoryError, match="cannot read the file"):
        load_inventory(tmp_path / "missing.yaml")


def test_empty_and_non_mapping_documents() -> None:
    assert "nodes: missing" in problems_of(None)
    assert "(top level): expected a mapping, got list" in problems_of([1, 2])
    assert "nodes: expected a non-empty list of nodes" in problems_of({"nodes": []})


def test_yaml_on_reads_as_debug_on_and_subset_keeps_order() -> None:
    inv = parse_inventory(yaml.safe_load("nodes: [{name: a, host: h1}, {name: b, host: h2}, {name: c, host: h3}]\n"
                                         "ssh: {key_file: /k, known_hosts: /kh}\nnccl_tests: {debug: on}\n"))
    assert inv.nccl_tests.debug == "on"
    assert [n.name for n in inv.subset(["c", "a"]).nodes] == ["a", "c"]
    with pytest.raises(KeyError, match="unknown node"):
        inv.subset(["zz"])


def test_no_way_to_authenticate_is_an_error() -> None:
    probs = problems_of(minimal(ssh={"use_agent": False, "known_hosts": "/kh"}))
    assert any(p.startswith("ssh.key_file: missing (and use_agent is false") for p in probs)


def test_env_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "secrets.env"
    f.write_text("# admin keys\nCP_A=one\nexport CP_B='two'\n")
    os.chmod(f, 0o644)
    with pytest.raises(InventoryError, match="lets others read"):
        read_env_file(f)
    os.chmod(f, 0o600)
    assert read_env_file(f) == {"CP_A": "one", "CP_B": "two"}
    f.write_text("not an assignment\n")
    with pytest.raises(InventoryError, match="line 1: expected NAME=VALUE"):
        read_env_file(f)


def test_sweep_from_zero_and_bad_hca_names_are_refused() -> None:
    probs = problems_of(minimal(nccl_tests={"sweep": {"min_bytes": 0}}, network={"hcas": ["mlx5_0,mlx5_1", "mlx5_2:1"]}))
    assert "nccl_tests.sweep.min_bytes: must be at least 1 byte, got 0" in probs
    assert "network.hcas: 'mlx5_0,mlx5_1' is not an HCA name (e.g. mlx5_0 or mlx5_0:1; one per list entry)" in probs
    assert not any("mlx5_2:1" in p for p in probs)


def test_srun_env_values_may_contain_commas() -> None:
    inv = parse_inventory(minimal(nccl_tests={"launcher": "srun", "env": {"NCCL_SOCKET_IFNAME": "eth0,eth1"}}))
    assert inv.nccl_tests.env == {"NCCL_SOCKET_IFNAME": "eth0,eth1"}
