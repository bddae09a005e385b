"""Node-health stand-ins of a sandbox node, built from captured real outputs (sandbox nodes have no GPU, no HCA).

Per node, under ``<node dir>``:

* ``standin/bin/nvidia-smi`` (first on the node's PATH): prints ``standin/nvidia-smi-q-x.xml`` for ``-q -x`` and
  the matching CSV for the facts command's ``--query-gpu`` queries. The XML is the real ``nvidia-smi -q -x`` of
  an A100-SXM4-80GB, driver 535.54.03 (telegraf's testdata, see tests/data/health/SOURCES.md; chosen before the
  real 8-GPU H100 capture now in tests/data/health was found), with its one GPU element repeated for 8 GPUs
  (bus ids of a DGX-style board; uuid and minor
  number per GPU), MIG and persistence mode as an acceptance node has them (MIG off, persistence on).
* ``standin/bin/dmesg``: prints ``standin/kmsg.log``, the node's kernel log (the host's ring buffer is shared
  by every node, so it cannot be used).
* ``tmp/sysfs`` (the node's ``/tmp/sysfs``, the sandbox inventory's ``network.sysfs_root``): ``bus/pci/devices``
  with the 8 GPUs (vendor 0x10de, class 0x030200) and the HCA's function, ``class/infiniband`` linked to the
  node's fake HCA (``<node dir>/ib``, GID tables by :mod:`gids`) which gains ``state``, ``phys_state``,
  ``rate``, ``counters/`` and ``hw_counters/`` (names from a real ConnectX dump, error counters at 0),
  ``class/net`` linked to the node's own ``/sys/class/net``, and ``module/`` with nvidia, nvidia_peermem, mlx5_ib.

Faults (:mod:`health_faults`) rewrite these files while the node runs. Every report of a sandbox run says
that these facts come from stand-ins (:data:`clusterproof.report.pagedata.STANDIN_BANNER`).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from clusterproof.nodes.health_command import GPU_QUERY
from clusterproof.sandbox.gids import HCA, PORT

SYSFS_IN_NODE = "/tmp/sysfs"  # the node's private /tmp is <node dir>/tmp
GPU_BUSES = ("18", "2a", "3a", "5d", "9a", "ab", "ba", "db")
HCA_BDF = "0000:17:00.0"
GPU_MODEL = "NVIDIA A100-SXM4-80GB"
GPU_PCIE = ("16.0 GT/s PCIe", "16")  # A100 SXM4: Gen4 x16
HCA_PCIE = ("32.0 GT/s PCIe", "16")  # ConnectX-7: Gen5 x16
RATE = "400 Gb/sec (4X NDR)"
#: counters/ of a real ConnectX port (leptonai/gpud PR #943), error counters at 0, data counters as captured.
COUNTERS = {
    "unicast_rcv_packets": 240037171331, "port_xmit_data": 205143497464492, "port_xmit_constraint_errors": 0,
    "VL15_dropped": 0, "port_rcv_errors": 0, "port_xmit_wait": 4294967295, "link_error_recovery": 0,
    "multicast_rcv_packets": 0, "multicast_xmit_packets": 0, "port_rcv_remote_physical_errors": 0,
    "port_rcv_packets": 240037171331, "unicast_xmit_packets": 242071897216, "excessive_buffer_overrun_errors": 0,
    "port_rcv_data": 205128687774249, "port_rcv_constraint_errors": 0, "link_downed": 0,
    "local_link_integrity_errors": 0, "port_xmit_discards": 0, "port_rcv_switch_relay_errors": 0,
    "port_xmit_packets": 242071897216, "symbol_error": 0,
}
HW_COUNTERS = {"out_of_buffer": 0, "out_of_sequence": 0, "packet_seq_err": 0, "rnr_nak_retry_err": 0, "roce_adp_retrans": 0,
               "rx_icrc_encapsulated": 0, "local_ack_timeout_err": 0, "np_cnp_sent": 0, "rp_cnp_handled": 0}
MODULES = ("nvidia", "nvidia_peermem", "mlx5_core", "mlx5_ib", "ib_core")
#: the node's kernel log before any fault (the mlx5 lines of a real H100 node's journal, leptonai/gpud PR #1209)
KMSG = ("[   12.101883] mlx5_core 0000:17:00.0 mlx5_0: Port: 1 Link INIT\n"
        "[   14.633120] mlx5_core 0000:17:00.0 mlx5_0: Port: 1 Link ACTIVE\n")


#: The sandbox inventory's ``health:`` section: what the stand-ins show when healthy (the captured GPU is an
#: A100 SXM4, a Gen4 device; the RoCE netdev is the node's veth at MTU 1500, because a jumbo MTU on the
#: bridge would change the collectives' traffic).
SANDBOX_HEALTH = {"gpus_per_node": 8, "gpu_models": ["NVIDIA A100-SXM4-80GB"], "min_pcie_gen": 4, "min_pcie_width": 16,
                  "ib_rate_gbps": 400, "link_layer": "Ethernet", "min_roce_mtu": 1500}


def standin_dir(node_dir: Path) -> Path:
    return node_dir / "standin"


def sysfs_dir(node_dir: Path) -> Path:
    return node_dir / "tmp" / "sysfs"


def gpu_bus_id(i: int) -> str:
    return f"00000000:{GPU_BUSES[i]}:00.0"


def gpu_bdf(i: int) -> str:
    return f"0000:{GPU_BUSES[i]}:00.0"


def _captured_xml() -> str:
    return (resources.files("clusterproof.sandbox") / "assets" / "nvidia-smi-q-x-a100-sxm4.xml").read_text()


def gpu_xml(n_gpus: int = 8, ecc_dbe_on: int | None = None, node: str = "") -> str:
    """The stand-in's ``nvidia-smi -q -x``: the captured document with ``n_gpus`` copies of its GPU element.
    ``ecc_dbe_on``: index of a GPU whose volatile and aggregate DRAM uncorrectable counts read 2."""
    text = _captured_xml()
    start, end = text.index("    <gpu id="), text.index("    </gpu>") + len("    </gpu>\n")
    head, gpu, tail = text[:start], text[start:end], text[end:]
    gpu = gpu.replace("<persistence_mode>Disabled</persistence_mode>", "<persistence_mode>Enabled</persistence_mode>")
    gpu = gpu.replace("<current_mig>Enabled</current_mig>", "<current_mig>Disabled</current_mig>")
    gpu = gpu.replace("<pending_mig>Enabled</pending_mig>", "<pending_mig>Disabled</pending_mig>")
    gpu = re.sub(r"\n        <mig_devices>.*?</mig_devices>", "\n        <mig_devices>\n            None\n        </mig_devices>", gpu, flags=re.S)
    parts = []
    for i in range(n_gpus):
        g = gpu.replace('id="00000000:01:00.0"', f'id="{gpu_bus_id(i)}"')
        g = g.replace("<pci_bus>01</pci_bus>", f"<pci_bus>{GPU_BUSES[i].upper()}</pci_bus>")
        g = g.replace("<pci_bus_id>00000000:01:00.0</pci_bus_id>", f"<pci_bus_id>{gpu_bus_id(i).upper()}</pci_bus_id>")
        g = g.replace("<minor_number>1</minor_number>", f"<minor_number>{i}</minor_number>")
        g = g.replace("GPU-513536b6-7d19-9063-b049-1e69664bb298", f"GPU-513536b6-7d19-9063-b049-1e69664bb2{i:02x}")
        if ecc_dbe_on == i:
            g = g.replace("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>2</dram_uncorrectable>")
        parts.append(g)
    head = head.replace("<attached_gpus>4</attached_gpus>", f"<attached_gpus>{n_gpus}</attached_gpus>")
    note = (f"<!-- clusterproof sandbox stand-in{' for ' + node if node else ''}: a captured real nvidia-smi -q -x "
            "(A100-SXM4-80GB, driver 535.54.03), GPU element repeated; NOT a GPU -->\n")
    first_nl = head.index("\n", head.index("<!DOCTYPE")) + 1
    return head[:first_nl] + note + head[first_nl:] + "".join(parts) + tail


def gpu_csv(n_gpus: int = 8, ecc_dbe_on: int | None = None) -> str:
    """The ``--query-gpu`` rows that agree with :func:`gpu_xml` (fields of :data:`GPU_QUERY`)."""
    rows = []
    for i in range(n_gpus):
        dbe = "2" if ecc_dbe_on == i else "0"
        values = {"index": str(i), "name": GPU_MODEL, "pci.bus_id": gpu_bus_id(i).upper(), "driver_version": "535.54.03",
                  "persistence_mode": "Enabled", "ecc.mode.current": "Enabled", "ecc.errors.uncorrected.volatile.total": dbe,
                  "ecc.errors.uncorrected.aggregate.total": dbe, "pcie.link.gen.current": "4", "pcie.link.gen.max": "4",
                  "pcie.link.width.current": "16", "pcie.link.width.max": "16"}
        rows.append(", ".join(values[f] for f in GPU_QUERY))
    return "".join(r + "\n" for r in rows)


def _nvidia_smi_script(sd: Path) -> str:
    query = ",".join(GPU_QUERY)
    return f"""#!/bin/sh
# clusterproof sandbox stand-in for nvidia-smi: replays captured real output ({sd}); this node has no GPU.
d='{sd}'
[ -f "$d/nvidia-smi.fail" ] && {{ cat "$d/nvidia-smi.fail"; exit 9; }}
# small files with the read builtin (no process), the XML with cat
case "$*" in
  "-q -x") exec cat "$d/nvidia-smi-q-x.xml";;
  "--query-gpu={query} --format=csv,noheader") while IFS= read -r l; do printf '%s\n' "$l"; done <"$d/nvidia-smi-query.csv"; exit 0;;
  "--query-gpu=name,pci.bus_id --format=csv,noheader") while IFS=, read -r _ n b _; do printf '%s,%s\n' "$n" "$b"; done <"$d/nvidia-smi-query.csv"; exit 0;;
esac
echo "clusterproof sandbox stand-in for nvidia-smi: arguments not replayed: $*" >&2
exit 2
"""


def _dmesg_script(sd: Path) -> str:
    return f"""#!/bin/sh
# clusterproof sandbox stand-in for dmesg: prints this node's kernel log ({sd}/kmsg.log).
while IFS= read -r l; do printf '%s\n' "$l"; done <'{sd}/kmsg.log'
"""


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: a reader's glob (counters/*) never sees it
    tmp.write_text(text)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)  # a reader sees the old or the new file, never half of one


def write_gpus(node_dir: Path, name: str, n_gpus: int = 8, ecc_dbe_on: int | None = None) -> None:
    sd = standin_dir(node_dir)
    _write(sd / "nvidia-smi-q-x.xml", gpu_xml(n_gpus, ecc_dbe_on, name))
    _write(sd / "nvidia-smi-query.csv", gpu_csv(n_gpus, ecc_dbe_on))


def write_kmsg(node_dir: Path, extra: str = "") -> None:
    _write(standin_dir(node_dir) / "kmsg.log", KMSG + extra)


def pcie_device_dir(node_dir: Path, bdf: str) -> Path:
    """A GPU's PCI function lives in ``<node>/pci/<bdf>``; the HCA's is its ``device`` directory (as in sysfs)."""
    return node_dir / "ib" / HCA / "device" if bdf == HCA_BDF else node_dir / "pci" / bdf


def write_pcie(node_dir: Path, bdf: str, speed: str, width: str, max_speed: str | None = None, max_width: str | None = None,
               vendor: str = "0x10de", klass: str = "0x030200") -> None:
    d = pcie_device_dir(node_dir, bdf)
    for f, v in (("vendor", vendor), ("class", klass), ("current_link_speed", speed), ("max_link_speed", max_speed or speed),
                 ("current_link_width", width), ("max_link_width", max_width or width), ("uevent", f"PCI_SLOT_NAME={bdf}")):
        _write(d / f, v + "\n")


def port_dir(node_dir: Path) -> Path:
    return node_dir / "ib" / HCA / "ports" / str(PORT)


def write_port(node_dir: Path, state: str = "4: ACTIVE", phys_state: str = "5: LinkUp", rate: str = RATE) -> None:
    p = port_dir(node_dir)
    for f, v in (("state", state), ("phys_state", phys_state), ("rate", rate), ("link_layer", "Ethernet")):
        _write(p / f, v + "\n")


def write_counter(node_dir: Path, counter: str, value: int) -> None:
    sub = "hw_counters" if counter in HW_COUNTERS else "counters"
    _write(port_dir(node_dir) / sub / counter, f"{value}\n")


def read_counter(node_dir: Path, counter: str) -> int:
    sub = "hw_counters" if counter in HW_COUNTERS else "counters"
    return int((port_dir(node_dir) / sub / counter).read_text().strip())


def _link(target: str | Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def write_node(node_dir: Path, name: str) -> None:
    """Every stand-in of one node, healthy (called by ``write_files`` before the node starts)."""
    sd = standin_dir(node_dir)
    _write(sd / "bin" / "nvidia-smi", _nvidia_smi_script(sd), 0o755)
    _write(sd / "bin" / "dmesg", _dmesg_script(sd), 0o755)
    write_gpus(node_dir, name)
    write_kmsg(node_dir)
    for i in range(len(GPU_BUSES)):
        write_pcie(node_dir, gpu_bdf(i), *GPU_PCIE)
    write_pcie(node_dir, HCA_BDF, *HCA_PCIE, vendor="0x15b3", klass="0x020700")
    write_port(node_dir)
    for c, v in COUNTERS.items():
        write_counter(node_dir, c, v)
    for c, v in HW_COUNTERS.items():
        write_counter(node_dir, c, v)
    root = sysfs_dir(node_dir)
    for bdf in [gpu_bdf(i) for i in range(len(GPU_BUSES))] + [HCA_BDF]:
        _link(pcie_device_dir(node_dir, bdf), root / "bus" / "pci" / "devices" / bdf)
    _link(node_dir / "ib", root / "class" / "infiniband")
    _link("/sys/class/net", root / "class" / "net")
    for m in MODULES:
        (root / "module" / m).mkdir(parents=True, exist_ok=True)


def node_path(node_dir: Path) -> str:
    """The PATH a session on the node gets: the stand-ins first."""
    return f"{standin_dir(node_dir) / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
