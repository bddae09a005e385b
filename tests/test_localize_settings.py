"""The localize / node_collectives / rails inventory sections (validated at load, errors name the field) and the
exclude-list files written at the end of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusterproof import unfit
from clusterproof.errors import InventoryError
from clusterproof.findings import Criterion, Subject, failed, passed
from clusterproof.inventory import parse_inventory

BASE: dict[str, Any] = {"nodes": [{"name": "node01", "host": "10.0.0.1"}], "ssh": {"strict_host_keys": False}}


def test_sections_load_with_defaults_and_values() -> None:
    inv = parse_inventory(BASE)
    assert inv.localize.hang_timeout_s == 60.0 and inv.localize.max_concurrent is None and inv.localize.strategy == "auto"
    assert inv.node_collectives is None and inv.rails is None
    inv = parse_inventory({**BASE, "localize": {"hang_timeout_s": 5, "max_concurrent": 4, "strategy": "bisect"},
                           "node_collectives": {"min_busbw": {"16G": 460}, "ib_only_min_busbw": {"16G": 18}, "ranks": 8},
                           "rails": {"split": "MOD 8", "min_busbw": {"1G": 40}, "rails": [{"name": "rail0", "env": {"NCCL_IB_HCA": "=mlx5_0:1"}}]}})
    assert (inv.localize.hang_timeout_s, inv.localize.max_concurrent, inv.localize.strategy) == (5.0, 4, "bisect")
    assert inv.node_collectives is not None and inv.node_collectives.lookup(False, 32 << 30) == 460.0
    assert inv.node_collectives.lookup(True, 16 << 30) == 18.0 and inv.node_collectives.lookup(True, 1 << 30) is None
    assert inv.rails is not None and inv.rails.split == "MOD 8" and inv.rails.rails[0].env == {"NCCL_IB_HCA": "=mlx5_0:1"}
    assert inv.rails.lookup(2 << 30) == 40.0


@pytest.mark.parametrize(("section", "problem"), [
    ({"localize": {"hang_timeout": 5}}, "localize.hang_timeout: unknown key (did you mean 'hang_timeout_s'?)"),
    ({"localize": {"strategy": "random"}}, "localize.strategy:"),
    ({"localize": {"max_concurrent": 0}}, "localize.max_concurrent:"),
    ({"localize": {"relative_drop": 1.5}}, "localize.relative_drop: must be below 1"),
    ({"node_collectives": {"min_busbw": {"16X": 1}}}, "node_collectives.min_busbw.16X:"),
    ({"node_collectives": {"collective": "all_to_all"}}, "node_collectives.collective: unknown collective 'all_to_all'"),
    ({"rails": {"rails": []}}, "rails.rails: expected a non-empty list of rails"),
    ({"rails": {"rails": [{"name": "r"}, {"name": "r"}]}}, "rails.rails: rail names must be unique"),
    ({"rails": {"split": "MODULO 8", "rails": [{"name": "r"}]}}, "rails.split: expected '<MOD|DIV|AND|OR|XOR> <number>'"),
    ({"rails": {"rails": [{"name": "r", "env": {"1BAD": "x"}}]}}, "rails.rails[0].env.1BAD: not an environment variable name"),
])
def test_bad_sections_name_the_field(section: dict[str, Any], problem: str) -> None:
    with pytest.raises(InventoryError) as e:
        parse_inventory({**BASE, **section}, "my-cluster.yaml")
    assert problem in str(e.value), str(e.value)


def test_exclude_list_files(tmp_path: Path) -> None:
    items = [
        failed(Criterion.BAD_NODE, Subject("node", "node07"), "node07: hung in every group it was in"),
        failed(Criterion.RAILS, Subject("rail", "node03/rail1", node="node03"), "node03 on rail1: slow"),
        passed(Criterion.BAD_NODE, Subject("node", "node01"), "node01: fine"),
        failed(Criterion.BAD_NODE, Subject("pair", "node01,node02"), "link node01-node02: slow together"),
    ]
    out = unfit.write_exclude_list(tmp_path, items)
    assert (tmp_path / "unfit_nodes.txt").read_text() == (
        "node03\tnode03/rail1: node03 on rail1: slow\nnode07\tnode07: hung in every group it was in\n")
    assert (tmp_path / "unfit_hostlist.txt").read_text() == "node[03,07]\n"
    assert (tmp_path / "drain_command.txt").read_text().startswith("scontrol update nodename=node[03,07] state=drain reason=")
    assert out.lines()[1] == "  hostlist: node[03,07]"
    empty = unfit.write_exclude_list(tmp_path / "ok", [items[2]])
    assert (tmp_path / "ok" / "unfit_nodes.txt").read_text() == "" and empty.drain is None
    assert empty.lines() == [f"exclude list: no unfit node ({tmp_path / 'ok' / 'unfit_nodes.txt'})"]
