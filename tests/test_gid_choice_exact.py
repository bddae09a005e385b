"""clusterproof.network.gid_choice, to the letter: the exact messages a person reads at 2 a.m., the arguments that
must reach the chooser, and the edges of the index rule. Written to kill the mutants `make mutation` found alive."""

from __future__ import annotations

import pandas as pd
import pytest

from clusterproof.errors import GidError
from clusterproof.network import gid_choice
from clusterproof.network.rdma import _row, _table

V4 = "0000:0000:0000:0000:0000:ffff:0a01:{:04x}"
LL = "fe80:0000:0000:0000:0000:0000:0000:0001"
G6 = "2001:0db8:0000:0000:0000:0000:0000:{:04x}"


def table(*rows: tuple[str, int, int, str, str | None, str | None]) -> pd.DataFrame:
    return _table([_row(*r) for r in rows])


def roce(dev: str, index: int, last: int, netdev: str | None = "eth0", version: str | None = "v2") -> tuple[str, int, int, str, str | None, str | None]:
    return (dev, 1, index, V4.format(last), version, netdev)


def test_criteria_messages() -> None:
    with pytest.raises(ValueError) as e:
        gid_choice.choose_gid_index(table(roce("mlx5_0", 3, 5)), family="ipx")
    assert str(e.value) == "family must be 'ipv4' or 'ipv6', got 'ipx'"
    with pytest.raises(ValueError) as e:
        gid_choice.choose_gid_index(table(roce("mlx5_0", 3, 5)), roce_version="v3")
    assert str(e.value) == "roce_version must be 'v1' or 'v2', got 'v3'"


def test_no_match_message_for_ipv6_on_two_netdevs_lists_what_was_found() -> None:
    t = table(("mlx5_0", 1, 0, LL, None, None), ("mlx5_0", 1, 1, V4.format(5), "v1", "eth0"))
    with pytest.raises(GidError) as e:
        gid_choice.choose_gid_index(t, netdev=["eth1", "eth0"], family="ipv6")
    assert str(e.value) == (
        "mlx5_0 port 1: no RoCE v2 global IPv6 GID on netdev eth0/eth1 (found: 0 ? fe80::1, 1 v1 ::ffff:10.1.0.5 eth0)"
    )


def test_found_text_of_an_empty_group_says_nothing() -> None:
    assert gid_choice._found_text(table()) == "nothing"


def test_missing_hca_message_names_every_missing_one_and_what_is_there() -> None:
    with pytest.raises(GidError) as e:
        gid_choice.choose_gid_index(table(roce("mlx5_0", 3, 5)), hcas=["mlx5_7", "mlx5_8"])
    assert str(e.value) == "HCA mlx5_7, mlx5_8 not in the GID table (HCAs present: mlx5_0)"
    with pytest.raises(GidError) as e:
        gid_choice.choose_gid_index(table(), hcas=["mlx5_7"])
    assert str(e.value) == "HCA mlx5_7 not in the GID table (HCAs present: none)"


def test_hca_list_limits_the_choice() -> None:
    # mlx5_1 disagrees (index 4) but is not asked for: the requested HCAs decide alone.
    t = table(roce("mlx5_0", 3, 5), roce("mlx5_1", 4, 6))
    assert gid_choice.choose_gid_index(t, hcas=["mlx5_0"]) == 3
    with pytest.raises(GidError) as e:
        gid_choice.choose_gid_index(t)
    assert str(e.value) == "HCAs disagree on the RoCE v2 IPv4 GID index: mlx5_0:1 -> 3, mlx5_1:1 -> 4"


def test_every_problem_on_its_own_line() -> None:
    t = table(roce("mlx5_0", 3, 5, version="v1"), roce("mlx5_1", 3, 6, version="v1"))
    with pytest.raises(GidError) as e:
        gid_choice.choose_gid_index(t)
    assert str(e.value).split("\n") == [
        "mlx5_0 port 1: no RoCE v2 IPv4 GID (found: 3 v1 ::ffff:10.1.0.5 eth0)",
        "mlx5_1 port 1: no RoCE v2 IPv4 GID (found: 3 v1 ::ffff:10.1.0.6 eth0)",
    ]


def test_lowest_matching_index_wins_and_zero_is_a_valid_index() -> None:
    t = table(roce("mlx5_0", 0, 5), roce("mlx5_0", 7, 9))
    assert gid_choice.choose_gid_index(t) == 0
    assert gid_choice.gid_indices_by_hca(t) == {"mlx5_0:1": 0}


def test_compare_nodes_passes_its_options_to_the_chooser() -> None:
    t6 = table(roce("mlx5_0", 1, 5), ("mlx5_0", 1, 2, G6.format(1), "v2", "eth0"))
    consensus = gid_choice.compare_nodes({"a": t6, "b": t6}, family="ipv6")
    assert consensus.index == 2 and consensus.message == "all 2 node(s) use GID index 2"


def test_compare_nodes_messages_exact() -> None:
    assert gid_choice.compare_nodes({}).message == "no nodes to compare"
    good = table(roce("mlx5_0", 3, 5))
    bad = table(roce("mlx5_0", 3, 6, version="v1"))
    c = gid_choice.compare_nodes({"n1": bad, "n2": bad})
    assert c.index is None
    lines = c.message.split("\n")
    assert lines[0] == "no node has a usable GID index (2 node(s)); odd node(s): n1, n2"
    assert lines[1] == "--- n1: no usable GID index:"
    assert lines[2] == "    mlx5_0 port 1: no RoCE v2 IPv4 GID (found: 3 v1 ::ffff:10.1.0.6 eth0)"
    assert lines[3] == "  n1 GID table:"
    assert lines[4].startswith("    ") and "mlx5_0" in lines[4]
    odd = gid_choice.compare_nodes({"n1": good, "n2": good, "n3": table(roce("mlx5_0", 4, 7))})
    head, *rest = odd.message.split("\n")
    assert head == "GID index 3 on 2 of 3 node(s); odd node(s): n3"
    assert rest[0] == "--- n3: GID index 4"
    tie = gid_choice.compare_nodes({"n1": good, "n2": table(roce("mlx5_0", 4, 7))})
    assert tie.index is None
    assert tie.message.split("\n")[0] == "no majority GID index: index 3 on 1 node(s), index 4 on 1 node(s); odd node(s): n1, n2"


def test_compare_nodes_with_one_usable_node_and_one_broken_uses_the_usable_index() -> None:
    good = table(roce("mlx5_0", 3, 5))
    c = gid_choice.compare_nodes({"n1": good, "n2": table()})
    assert c.index == 3 and c.odd_nodes == ["n2"]
    assert c.message.split("\n")[0] == "GID index 3 on 1 of 2 node(s); odd node(s): n2"


def test_nccl_env_edges() -> None:
    assert gid_choice.nccl_env(0, []) == {"NCCL_IB_GID_INDEX": "0"}
    assert gid_choice.nccl_env(3, ["mlx5_0", "mlx5_1:1"]) == {"NCCL_IB_GID_INDEX": "3", "NCCL_IB_HCA": "=mlx5_0,mlx5_1:1"}
    for bad in (True, -1, "3", 2.0):
        with pytest.raises(ValueError) as e:
            gid_choice.nccl_env(bad, [])  # type: ignore[arg-type]
        assert str(e.value) == f"GID index must be a non-negative int, got {bad!r}"
    with pytest.raises(ValueError) as e:
        gid_choice.nccl_env(3, ["mlx5 0"])
    assert str(e.value) == "bad HCA name 'mlx5 0' for NCCL_IB_HCA (expected e.g. 'mlx5_0' or 'mlx5_0:1')"
    with pytest.raises(ValueError) as e:
        gid_choice.choose_gid_index(table(roce("mlx5_0", 3, 5)), hcas=["mlx5 0"])
    assert str(e.value) == "bad HCA name 'mlx5 0' (expected e.g. 'mlx5_0' or 'mlx5_0:1')"


def test_messages_do_not_depend_on_the_row_order_of_the_table() -> None:
    t = table(roce("mlx5_0", 3, 5), roce("mlx5_1", 4, 6))
    shuffled = t.iloc[::-1].reset_index(drop=True)
    with pytest.raises(GidError) as e:
        gid_choice.choose_gid_index(shuffled)
    assert str(e.value) == "HCAs disagree on the RoCE v2 IPv4 GID index: mlx5_0:1 -> 3, mlx5_1:1 -> 4"
    assert list(gid_choice.gid_indices_by_hca(shuffled)) == ["mlx5_0:1", "mlx5_1:1"]
