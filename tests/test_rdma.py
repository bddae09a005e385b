"""clusterproof.network.rdma: GID tables from sysfs trees, show_gids text and the remote one-command dump; the index
choice (NCCL >= 2.21 rule) per HCA and across nodes.

Sysfs trees are built under tmp_path from tests/data/gids/*.tree.json (format in that directory's README);
the show_gids fixtures there are the two real scripts' output on the same trees.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from clusterproof.errors import GidError, ParseError
from clusterproof.network import gid_choice, rdma

DATA = Path(__file__).parent / "data" / "gids"
TREES = sorted(p.name.removesuffix(".tree.json") for p in DATA.glob("*.tree.json"))
SHOW_GIDS = sorted(p.name for p in DATA.glob("*.show_gids_*.txt"))


def load_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((DATA / f"{name}.tree.json").read_text())
    return spec


def build_tree(sys_root: Path, spec: dict[str, Any]) -> Path:
    """Write ``spec`` as ``<sys_root>/class/infiniband/<dev>/ports/<port>/{gids,gid_attrs/...}``; return sys_root.

    ``None`` leaves a types/ndevs file out; ``"<unreadable>"`` puts a directory there (reading it fails with
    EISDIR, standing in for the kernel's EINVAL).
    """
    for dev, ports in spec["devices"].items():
        for port, rows in ports.items():
            pdir = sys_root / "class" / "infiniband" / dev / "ports" / port
            for sub in ("gids", "gid_attrs/types", "gid_attrs/ndevs"):
                (pdir / sub).mkdir(parents=True, exist_ok=True)
            # Real sysfs has these too; they must not confuse the readers.
            (pdir / "state").write_text("4: ACTIVE\n")
            (pdir / "link_layer").write_text("Ethernet\n")
            for row in rows:
                (pdir / "gids" / str(row["index"])).write_text(row["gid"] + "\n")
                for key, sub in (("type", "gid_attrs/types"), ("ndev", "gid_attrs/ndevs")):
                    target = pdir / sub / str(row["index"])
                    if row[key] == "<unreadable>":
                        target.mkdir()
                    elif row[key] is not None:
                        target.write_text(row[key] + "\n")
    return sys_root


def tree(tmp_path: Path, name: str) -> Path:
    return build_tree(tmp_path / name, load_spec(name))


def run_remote(sys_root: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", rdma.remote_gid_command(str(sys_root))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


# ---------------------------------------------------------------------------------------------------------
# read_gid_table


def test_rdma_read_gid_table_connectx_layout(tmp_path: Path) -> None:
    table = rdma.read_gid_table(tree(tmp_path, "connectx_2hca"))
    assert list(table.columns) == list(rdma.GID_COLUMNS)
    assert table["port"].dtype == "int64" and table["index"].dtype == "int64"
    # 6 non-zero GIDs per port; the 10 zero slots (with absent or unreadable attrs) are not rows.
    assert len(table) == 12
    assert table.groupby("dev")["index"].apply(list).to_dict() == {
        "mlx5_0": [0, 1, 2, 3, 4, 5],
        "mlx5_1": [0, 1, 2, 3, 4, 5],
    }
    row = table[(table.dev == "mlx5_0") & (table["index"] == 3)].iloc[0]
    assert row.to_dict() == {
        "dev": "mlx5_0",
        "port": 1,
        "index": 3,
        "gid": "0000:0000:0000:0000:0000:ffff:0a01:0105",
        "ipv4": "10.1.1.5",
        "roce_version": "v2",
        "netdev": "ens1f0np0",
    }
    link_local = table[(table.dev == "mlx5_1") & (table["index"] == 0)].iloc[0]
    assert link_local.ipv4 is None and link_local.roce_version == "v1" and link_local.netdev == "ens1f1np1"
    assert gid_choice.choose_gid_index(table) == 3


@pytest.mark.parametrize("name", TREES)
def test_rdma_choose_gid_index_matches_fixture_expectation(tmp_path: Path, name: str) -> None:
    spec = load_spec(name)
    table = rdma.read_gid_table(build_tree(tmp_path, spec))
    nonzero = sum(
        1
        for ports in spec["devices"].values()
        for rows in ports.values()
        for r in rows
        if set(r["gid"]) != {"0", ":"}
    )
    assert len(table) == nonzero
    if spec["expect_index"] is None:
        with pytest.raises(GidError):
            gid_choice.choose_gid_index(table)
    else:
        assert gid_choice.choose_gid_index(table) == spec["expect_index"]


def test_rdma_read_gid_table_sandbox_layout_is_index_5(tmp_path: Path) -> None:
    table = rdma.read_gid_table(tree(tmp_path, "sandbox_node1"))
    assert table["index"].tolist() == [0, 1, 2, 3, 4, 5]
    assert table["ipv4"].tolist() == [None, None, None, None, "192.168.77.11", "192.168.77.11"]
    assert table["roce_version"].tolist() == ["v1", "v2"] * 3
    assert set(table["netdev"]) == {"eth0"}
    assert gid_choice.choose_gid_index(table) == 5
    assert gid_choice.choose_gid_index(table, family="ipv6") == 3  # fd77::11 is not link-local
    assert gid_choice.choose_gid_index(table, roce_version="v1") == 4
    assert gid_choice.choose_gid_index(table, netdev="eth0", hcas=["mlx5_0"]) == 5


def test_rdma_read_gid_table_no_infiniband_is_empty(tmp_path: Path) -> None:
    (tmp_path / "class" / "net").mkdir(parents=True)
    table = rdma.read_gid_table(tmp_path)
    assert table.empty and list(table.columns) == list(rdma.GID_COLUMNS)
    assert rdma.read_gid_table(tmp_path / "does-not-exist").empty
    with pytest.raises(GidError, match="empty"):
        gid_choice.choose_gid_index(table)


def test_rdma_read_gid_table_skips_unreadable_gid_and_rejects_garbage(tmp_path: Path) -> None:
    root = tree(tmp_path, "sandbox_node1")
    gids = root / "class" / "infiniband" / "mlx5_0" / "ports" / "1" / "gids"
    (gids / "5").unlink()
    (gids / "5").mkdir()  # unreadable like EINVAL: the row disappears, nothing crashes
    table = rdma.read_gid_table(root)
    assert 5 not in table["index"].tolist()
    with pytest.raises(
        GidError, match=r"mlx5_0 port 1: no RoCE v2 IPv4 GID \(found: 0 v1 fe80::5c3a:10ff:fec4:7d21 eth0"
    ):
        gid_choice.choose_gid_index(table)
    (gids / "7").write_text("not-a-gid\n")
    with pytest.raises(ParseError, match=r"gids/7: not a GID: 'not-a-gid'"):
        rdma.read_gid_table(root)


# ---------------------------------------------------------------------------------------------------------
# choose_gid_index, gid_indices_by_hca


def test_rdma_two_hcas_agree_and_disagree(tmp_path: Path) -> None:
    agree = rdma.read_gid_table(tree(tmp_path, "connectx_2hca"))
    assert gid_choice.gid_indices_by_hca(agree) == {"mlx5_0:1": 3, "mlx5_1:1": 3}
    assert gid_choice.choose_gid_index(agree) == 3

    disagree = rdma.read_gid_table(tree(tmp_path, "connectx_2hca_disagree"))
    assert gid_choice.gid_indices_by_hca(disagree) == {"mlx5_0:1": 3, "mlx5_1:1": 5}
    with pytest.raises(GidError) as err:
        gid_choice.choose_gid_index(disagree)
    assert "disagree" in str(err.value)
    assert "mlx5_0:1 -> 3" in str(err.value) and "mlx5_1:1 -> 5" in str(err.value)
    # Restricting to one HCA (by dev or dev:port) settles it.
    assert gid_choice.choose_gid_index(disagree, hcas=["mlx5_0"]) == 3
    assert gid_choice.choose_gid_index(disagree, hcas=["mlx5_1:1"]) == 5


def test_rdma_hcas_filter_missing_hca_is_an_error(tmp_path: Path) -> None:
    table = rdma.read_gid_table(tree(tmp_path, "connectx_2hca"))
    with pytest.raises(GidError, match=r"HCA mlx5_3 not in the GID table \(HCAs present: mlx5_0, mlx5_1\)"):
        gid_choice.choose_gid_index(table, hcas=["mlx5_0", "mlx5_3"])
    assert gid_choice.gid_indices_by_hca(table, hcas=["mlx5_0", "mlx5_3"]) == {"mlx5_0:1": 3, "mlx5_3": None}
    with pytest.raises(ValueError, match="bad HCA name"):
        gid_choice.choose_gid_index(table, hcas=["mlx5_0 mlx5_1"])


def test_rdma_netdev_filter(tmp_path: Path) -> None:
    table = rdma.read_gid_table(tree(tmp_path, "connectx_2hca"))
    assert gid_choice.choose_gid_index(table, netdev=["ens1f0np0", "ens1f1np1"]) == 3
    assert gid_choice.choose_gid_index(table, netdev="ens1f0np0", hcas=["mlx5_0"]) == 3
    # One netdev and no HCA list: mlx5_1 has no GID on ens1f0np0 at all, so it is another rail's port and is not
    # considered (issue 10: this used to raise "no RoCE v2 IPv4 GID on netdev").
    assert gid_choice.choose_gid_index(table, netdev="ens1f0np0") == 3
    assert gid_choice.gid_indices_by_hca(table, netdev="ens1f0np0") == {"mlx5_0:1": 3}
    # A listed HCA is always judged: named, it must have a GID on the netdev.
    with pytest.raises(
        GidError, match=r"mlx5_1 port 1: no RoCE v2 IPv4 GID on netdev ens1f0np0 \(found: 0 v1 fe80::"
    ):
        gid_choice.choose_gid_index(table, netdev="ens1f0np0", hcas=["mlx5_0", "mlx5_1"])
    # No port at all on the netdev: nothing to choose from, and the error lists what there is.
    with pytest.raises(GidError, match=r"no HCA port has any GID on netdev eth9"):
        gid_choice.choose_gid_index(table, netdev="eth9")


def test_rdma_ipv6_only_table_has_no_ipv4_index(tmp_path: Path) -> None:
    table = rdma.read_gid_table(tree(tmp_path, "ipv6_only"))
    with pytest.raises(GidError) as err:
        gid_choice.choose_gid_index(table)
    assert str(err.value) == (
        "bnxt_re0 port 1: no RoCE v2 IPv4 GID (found: 0 v1 fe80::20a:f7ff:feb1:2230 ens2f0np0, "
        "1 v2 fe80::20a:f7ff:feb1:2230 ens2f0np0, 2 v1 2001:db8:5::7 ens2f0np0, 3 v2 2001:db8:5::7 ens2f0np0)"
    )
    assert gid_choice.choose_gid_index(table, family="ipv6") == 3
    with pytest.raises(ValueError, match="family"):
        gid_choice.choose_gid_index(table, family="inet")


def test_rdma_unknown_type_counts_as_no_version(tmp_path: Path) -> None:
    table = rdma.read_gid_table(tree(tmp_path, "container_partial_attrs"))
    assert table["roce_version"].tolist() == [None, None, "v1", "v2"]
    assert table["netdev"].tolist() == [None, None, None, None]
    assert gid_choice.choose_gid_index(table) == 3


# ---------------------------------------------------------------------------------------------------------
# show_gids text


@pytest.mark.parametrize("fixture", SHOW_GIDS)
def test_rdma_parse_show_gids_equals_sysfs_read(tmp_path: Path, fixture: str) -> None:
    tree_name = fixture.split(".show_gids_")[0]
    expected = rdma.read_gid_table(tree(tmp_path, tree_name))
    parsed = rdma.parse_show_gids((DATA / fixture).read_text())
    pd.testing.assert_frame_equal(parsed, expected)


def test_rdma_parse_show_gids_connectx_values() -> None:
    table = rdma.parse_show_gids((DATA / "connectx_2hca.show_gids_mlnx_pasted.txt").read_text())
    assert len(table) == 12
    assert table.loc[table["index"] == 3, "ipv4"].tolist() == ["10.1.1.5", "10.1.2.5"]
    assert gid_choice.choose_gid_index(table) == 3


def test_rdma_parse_show_gids_empty_table_and_errors() -> None:
    header = "DEV\tPORT\tINDEX\tGID\t\t\t\t\tIPv4  \t\tVER\tDEV\n---\t----\t-----\t---\t\t\t\t\t------------  \t---\t---\n"
    assert rdma.parse_show_gids(header + "n_gids_found=0\n").empty
    good = "mlx5_0\t1\t3\t0000:0000:0000:0000:0000:ffff:0a01:0105\t10.1.1.5  \tv2\teth2\n"
    with pytest.raises(ParseError, match=r"line 4: n_gids_found=2 but 1 GID rows"):
        rdma.parse_show_gids(header + good + "n_gids_found=2\n")
    with pytest.raises(ParseError, match=r"show_gids line 3: PORT is not a number: 'x'"):
        rdma.parse_show_gids(header + "mlx5_0\tx\t3\tfe80::1\tv2\teth2\n")
    with pytest.raises(ParseError, match=r"show_gids line 1: not a GID: 'fe80::1'"):
        rdma.parse_show_gids("mlx5_0\t1\t3\tfe80::1\tv2\teth2\n")
    with pytest.raises(
        ParseError, match=r"line 1: PORT is not a number: 'show_gids:' in 'bash: show_gids: command"
    ):
        rdma.parse_show_gids("bash: show_gids: command not found\n")
    with pytest.raises(
        ParseError, match=r"line 1: expected 'DEV PORT INDEX GID \[IPv4\] \[VER\] \[DEV\]', got 'Killed'"
    ):
        rdma.parse_show_gids("Killed\n")
    with pytest.raises(ParseError, match=r"line 3: expected 'DEV PORT INDEX GID"):
        rdma.parse_show_gids(header + good.replace("eth2", "eth2 extra"))
    with pytest.raises(ParseError, match=r"line 3: unexpected columns \['v9x', 'eth2'\]"):
        rdma.parse_show_gids(header + good.replace("v2", "v9x"))
    with pytest.raises(ParseError, match="empty"):
        rdma.parse_show_gids("")


# ---------------------------------------------------------------------------------------------------------
# remote_gid_command + parse_gid_dump, executed for real with sh


@pytest.mark.parametrize("name", TREES)
def test_rdma_remote_gid_command_round_trip(tmp_path: Path, name: str) -> None:
    root = tree(tmp_path, name)
    done = run_remote(root)
    assert done.stderr == ""
    pd.testing.assert_frame_equal(rdma.parse_gid_dump(done.stdout), rdma.read_gid_table(root))


def test_rdma_remote_gid_command_keeps_type_text_with_spaces(tmp_path: Path) -> None:
    out = run_remote(tree(tmp_path, "sandbox_node1")).stdout.splitlines()
    assert out[0] == rdma.DUMP_HEADER and out[-1] == rdma.DUMP_END
    assert out[1].split("\t") == [
        "mlx5_0",
        "1",
        "0",
        "fe80:0000:0000:0000:5c3a:10ff:fec4:7d21",
        "IB/RoCE v1",
        "eth0",
    ]
    assert out[2].split("\t")[4] == "RoCE v2"


def test_rdma_remote_gid_command_without_infiniband(tmp_path: Path) -> None:
    (tmp_path / "class").mkdir()
    done = run_remote(tmp_path)
    assert done.stdout.splitlines() == [
        rdma.DUMP_HEADER,
        f"{rdma.DUMP_NO_CLASS} {tmp_path}/class/infiniband",
        rdma.DUMP_END,
    ]
    assert rdma.parse_gid_dump(done.stdout).empty


def test_rdma_remote_gid_command_quotes_the_root(tmp_path: Path) -> None:
    odd_root = tmp_path / "sys root's $(touch pwned) `x`"
    build_tree(odd_root, load_spec("connectx_2hca"))
    done = run_remote(odd_root)
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()
    pd.testing.assert_frame_equal(rdma.parse_gid_dump(done.stdout), rdma.read_gid_table(odd_root))


def test_rdma_remote_gid_command_composes_with_other_commands(tmp_path: Path) -> None:
    root = tree(tmp_path, "connectx_2hca")
    script = f"echo motd line; {rdma.remote_gid_command(str(root))}; uname -s"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.splitlines()[-1] == "Linux"
    pd.testing.assert_frame_equal(rdma.parse_gid_dump(done.stdout), rdma.read_gid_table(root))


def test_rdma_parse_gid_dump_errors(tmp_path: Path) -> None:
    text = run_remote(tree(tmp_path, "connectx_2hca")).stdout
    lines = text.splitlines()
    with pytest.raises(ParseError, match="cut off"):
        rdma.parse_gid_dump("\n".join(lines[:5]))
    with pytest.raises(ParseError, match=r"no '#clusterproof-gids v1' header.*first line: 'sh: 1: bad'"):
        rdma.parse_gid_dump("sh: 1: bad\n")
    broken = [*lines[:3], "mlx5_0 1 3 garbage", *lines[3:]]
    with pytest.raises(ParseError, match=r"GID dump line 4: expected 6 tab-separated fields"):
        rdma.parse_gid_dump("\n".join(broken))
    bad_gid = lines[1].split("\t")
    bad_gid[3] = "zzzz"
    with pytest.raises(ParseError, match=r"GID dump line 2: not a GID: 'zzzz'"):
        rdma.parse_gid_dump("\n".join([lines[0], "\t".join(bad_gid), lines[-1]]))


def test_rdma_remote_gid_command_cost_2hca_16gid(tmp_path: Path) -> None:
    """Prints how long ``sh -c <command>`` takes on 2 HCAs x 16 GID slots (no timing assertion)."""
    root = tree(tmp_path, "connectx_2hca")
    cmd = rdma.remote_gid_command(str(root))
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", cmd], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    baseline = []
    for _ in range(20):
        t0 = time.perf_counter()
        subprocess.run(["sh", "-c", "true"], capture_output=True, check=True)
        baseline.append(time.perf_counter() - t0)
    med, base = statistics.median(times) * 1e3, statistics.median(baseline) * 1e3
    print(
        f"\nremote_gid_command, 2 HCAs x 16 GIDs: median {med:.2f} ms per `sh -c` (bare `sh -c true`: {base:.2f} ms)"
    )
    assert (
        len(rdma.parse_gid_dump(subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout))
        == 12
    )


# ---------------------------------------------------------------------------------------------------------
# compare_nodes, nccl_env


def _swapped_sandbox(spec: dict[str, Any]) -> dict[str, Any]:
    """The sandbox table with the IPv4 GIDs at 2/3 and the IPv6 ULA at 4/5 (RoCE v2 IPv4 index 3)."""
    rows = spec["devices"]["mlx5_0"]["1"]
    new = [dict(r) for r in rows]
    for a, b in ((2, 4), (3, 5)):
        new[a]["gid"], new[b]["gid"] = rows[b]["gid"], rows[a]["gid"]
    return {**spec, "devices": {"mlx5_0": {"1": new}}}


def test_rdma_compare_nodes_names_the_odd_node(tmp_path: Path) -> None:
    spec = load_spec("sandbox_node1")
    tables = {f"node{i}": rdma.read_gid_table(build_tree(tmp_path / f"node{i}", spec)) for i in (1, 2, 4)}
    tables["node3"] = rdma.read_gid_table(build_tree(tmp_path / "node3", _swapped_sandbox(spec)))
    tables["node5"] = rdma.read_gid_table(tree(tmp_path, "ipv6_only"))
    result = gid_choice.compare_nodes(tables)
    assert result.index == 5
    assert result.per_node == {"node1": 5, "node2": 5, "node4": 5, "node3": 3, "node5": None}
    assert result.odd_nodes == ["node3", "node5"]
    assert (
        set(result.errors) == {"node5"} and "bnxt_re0 port 1: no RoCE v2 IPv4 GID" in result.errors["node5"]
    )
    msg = result.message
    assert msg.startswith("GID index 5 on 3 of 5 node(s); odd node(s): node3, node5")
    assert "--- node3: GID index 3" in msg and "--- node5: no usable GID index:" in msg
    # node3's own table is shown: its RoCE v2 IPv4 GID sits at index 3.
    assert "mlx5_0  1  3  0000:0000:0000:0000:0000:ffff:c0a8:4d0b  192.168.77.11  v2  eth0" in msg
    assert "bnxt_re0  1  3  2001:0db8:0005:0000:0000:0000:0000:0007" in msg
    assert "node1" not in msg.split("odd node(s):")[1]


def test_rdma_compare_nodes_agreement_and_tie(tmp_path: Path) -> None:
    spec = load_spec("sandbox_node1")
    five = rdma.read_gid_table(build_tree(tmp_path / "a", spec))
    three = rdma.read_gid_table(build_tree(tmp_path / "b", _swapped_sandbox(spec)))
    ok = gid_choice.compare_nodes({"node1": five, "node2": five}, hcas=["mlx5_0"])
    assert (ok.index, ok.odd_nodes, ok.errors) == (5, [], {})
    assert ok.message == "all 2 node(s) use GID index 5"
    tie = gid_choice.compare_nodes({"node1": five, "node2": three})
    assert tie.index is None and tie.odd_nodes == ["node1", "node2"]
    assert tie.message.startswith("no majority GID index: index 5 on 1 node(s), index 3 on 1 node(s)")


def test_rdma_nccl_env() -> None:
    assert gid_choice.nccl_env(5, ["mlx5_0:1", "mlx5_1:1"]) == {
        "NCCL_IB_GID_INDEX": "5",
        "NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1",
    }
    assert gid_choice.nccl_env(3, ["mlx5_1"]) == {"NCCL_IB_GID_INDEX": "3", "NCCL_IB_HCA": "=mlx5_1"}
    assert gid_choice.nccl_env(3, []) == {"NCCL_IB_GID_INDEX": "3"}
    with pytest.raises(ValueError, match="bad HCA name"):
        gid_choice.nccl_env(3, ["=mlx5_0"])
    with pytest.raises(ValueError, match="non-negative"):
        gid_choice.nccl_env(-1, [])
