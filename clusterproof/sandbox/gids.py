"""The fake RoCE HCA of a sandbox node: a sysfs-style tree under ``<node dir>/ib``.

Each node sees this directory as ``/sys/class/infiniband`` (bound there by node_init.sh), so tools
that read sysfs the way ``show_gids`` does find ``mlx5_0`` port 1 with a GID table. The host rewrites
the files while the node runs to inject faults. The kernel here has no RDMA, so netlink-based tools
(``rdma link``, ``ibv_devinfo``) see nothing: only sysfs readers are served.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

HCA, PORT, NETDEV, N_GIDS = "mlx5_0", 1, "eth0", 16
ROCE_V1, ROCE_V2 = "IB/RoCE v1", "RoCE v2"
ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"
#: standard: 0/1 link-local v1/v2, 2/3 ULA v1/v2, 4/5 IPv4-mapped v1/v2 (index 5 = RoCE v2 IPv4).
#: other_index: the IPv4-mapped pair moved to 2/3 (RoCE v2 IPv4 at index 3, as after a re-ordering).
#: no_rocev2: a RoCE v1-only port (link-local, ULA and IPv4 entries, none of them RoCE v2).
LAYOUTS = ("standard", "other_index", "no_rocev2")


def node_mac(ip: str) -> str:
    """The MAC of a node's eth0, derived from its IPv4 address (locally administered, unique per subnet)."""
    return "02:cb:" + ":".join(f"{int(o):02x}" for o in ip.split("."))


def node_ipv6(ip: str) -> str:
    """The node's ULA IPv6 address, e.g. 192.168.77.11 -> fd00:77::11."""
    o = ip.split(".")
    return f"fd00:{o[2]}::{o[3]}"


def _sysfs_gid(addr: ipaddress.IPv6Address) -> str:
    """``fe80::1`` -> ``fe80:0000:0000:0000:0000:0000:0000:0001`` (how sysfs prints a GID)."""
    return addr.exploded


def gid_entries(ip: str, layout: str = "standard") -> list[tuple[str, str]]:
    """The non-zero GID table entries of a node, as (gid, type) in index order.

    Raises:
        ValueError: unknown layout.
    """
    mac = bytes(int(x, 16) for x in node_mac(ip).split(":"))
    eui64 = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    link_local = _sysfs_gid(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui64))
    ula = _sysfs_gid(ipaddress.IPv6Address(node_ipv6(ip)))
    v4 = _sysfs_gid(ipaddress.IPv6Address(f"::ffff:{ip}"))
    if layout == "standard":
        order = [(link_local, ROCE_V1), (link_local, ROCE_V2), (ula, ROCE_V1), (ula, ROCE_V2), (v4, ROCE_V1), (v4, ROCE_V2)]
    elif layout == "other_index":
        order = [(link_local, ROCE_V1), (link_local, ROCE_V2), (v4, ROCE_V1), (v4, ROCE_V2), (ula, ROCE_V1), (ula, ROCE_V2)]
    elif layout == "no_rocev2":
        order = [(link_local, ROCE_V1), (ula, ROCE_V1), (v4, ROCE_V1)]
    else:
        raise ValueError(f"unknown GID table layout {layout!r} (known: {', '.join(LAYOUTS)})")
    return order


def _put(path: Path, text: str) -> None:
    # Replace atomically: a node reading the table at the same moment sees the old or the new file.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_hca(ib_dir: Path, node_name: str) -> None:
    """Create the static part of the fake HCA (port state, link layer, netdev) under ``ib_dir``."""
    hca = ib_dir / HCA
    port = hca / "ports" / str(PORT)
    for d in (port / "gids", port / "gid_attrs" / "types", port / "gid_attrs" / "ndevs", hca / "device" / "net" / NETDEV):
        d.mkdir(parents=True, exist_ok=True)
    # rate: a stand-in fact (the veth has no line rate); line-rate fractions on the sandbox say so.
    for name, text in {"state": "4: ACTIVE", "phys_state": "5: LinkUp", "link_layer": "Ethernet",
                       "rate": "400 Gb/sec (4X NDR)"}.items():
        (port / name).write_text(text + "\n")
    (hca / "node_type").write_text("1: CA\n")
    (hca / "hca_type").write_text(f"clusterproof sandbox HCA ({node_name})\n")


def write_gid_table(ib_dir: Path, ip: str, layout: str = "standard") -> None:
    """Write the 16-entry GID table of ``mlx5_0`` port 1 in ``layout`` (see LAYOUTS).

    Unused entries hold the all-zero GID with empty type and netdev files (real sysfs answers EINVAL
    there; either way a reader gets no type).

    Raises:
        ValueError: unknown layout.
    """
    entries = gid_entries(ip, layout)
    port = ib_dir / HCA / "ports" / str(PORT)
    for i in range(N_GIDS):
        gid, kind = entries[i] if i < len(entries) else (ZERO_GID, "")
        _put(port / "gids" / str(i), gid + "\n")
        _put(port / "gid_attrs" / "types" / str(i), kind + "\n" if kind else "")
        _put(port / "gid_attrs" / "ndevs" / str(i), NETDEV + "\n" if kind else "")
