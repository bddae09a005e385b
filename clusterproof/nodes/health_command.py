"""The node-health part of the facts command: one ``sh`` fragment, appended to the facts script, that prints a
section per health fact (so one bad section fails only that fact's check).

=================  ==============================================================================================
section            what it prints
=================  ==============================================================================================
``h.gpu_csv``      ``nvidia-smi --query-gpu=<GPU_QUERY> --format=csv,noheader`` and ``rc N`` (``absent`` without it);
                   the query runs once, in the facts script's ``gpu`` section, which leaves it in ``$GQ``/``$GR``
``h.gpu_xml``      ``nvidia-smi -q -x`` and ``rc N``, without its ``<supported_clocks>`` element and indentation
                   (about half the bytes of an 8-GPU node; 32 nodes' XML costs the harness CPU to receive)
``h.kmsg``         the ``NVRM: Xid`` lines of ``dmesg`` (or ``journalctl -k -b``), its ``dmesg:`` errors, ``rc N``
``h.pcie``         ``kind<TAB>name<TAB>bdf<TAB>cur_speed<TAB>max_speed<TAB>cur_width<TAB>max_width`` per NVIDIA
                   GPU (PCI vendor 0x10de, class 0x0300/0x0302) and per HCA (``class/infiniband/*/device``)
``h.ib``           ``attr HCA PORT NAME VALUE`` (state, phys_state, rate, link_layer), ``counters|hw_counters HCA
                   PORT NAME VALUE``, ``netdev HCA PORT IFNAME MTU``; ``?unreadable`` where a read failed
``h.modules``      the GPUDirect/driver kernel modules present under ``<sysfs>/module``
``h.nccl``         ``file PATH`` + ``line TEXT`` for /etc/nccl.conf and ~/.nccl.conf; ``env NAME=VALUE`` for the
                   NCCL_* variables of a login on the node
``h.lspci``        ``lspci -vvv -d ::0604`` (PCI bridges: the switches above GPUs and HCAs) when lspci exists
=================  ==============================================================================================

Per-file reads use the ``read`` builtin (no process per file); external programs run once each.
"""

from __future__ import annotations

import shlex

#: Fields of the ``--query-gpu`` CSV, in order (names as ``nvidia-smi --help-query-gpu`` lists them).
GPU_QUERY: tuple[str, ...] = (
    "index", "name", "pci.bus_id", "driver_version", "persistence_mode", "ecc.mode.current",
    "ecc.errors.uncorrected.volatile.total", "ecc.errors.uncorrected.aggregate.total",
    "pcie.link.gen.current", "pcie.link.gen.max", "pcie.link.width.current", "pcie.link.width.max",
)
MODULES: tuple[str, ...] = ("nvidia", "nvidia_peermem", "nv_peer_mem", "mlx5_core", "mlx5_ib", "ib_core")
SECTIONS: tuple[str, ...] = ("h.gpu_csv", "h.gpu_xml", "h.kmsg", "h.pcie", "h.ib", "h.modules", "h.nccl", "h.lspci")

_IB = r"""echo "$M h.ib"; for p in "$S"/class/infiniband/*/ports/*; do [ -d "$p" ] || continue; h=${{p%/ports/*}}; h=${{h##*/}}; n=${{p##*/}}
for a in state phys_state rate link_layer; do v='?unreadable'; read -r v 2>/dev/null <"$p/$a" || v='?unreadable'; printf 'attr %s %s %s %s\n' "$h" "$n" "$a" "$v"; done
for f in "$p"/counters/* "$p"/hw_counters/*; do [ -f "$f" ] || continue; v='?unreadable'; read -r v 2>/dev/null <"$f" || v='?unreadable'; g=${{f%/*}}; printf '%s %s %s %s %s\n' "${{g##*/}}" "$h" "$n" "${{f##*/}}" "$v"; done
i=; read -r i 2>/dev/null <"$p/gid_attrs/ndevs/0"; if [ -n "$i" ]; then m='?unreadable'; read -r m 2>/dev/null <"$S/class/net/$i/mtu" || m='?unreadable'; printf 'netdev %s %s %s %s\n' "$h" "$n" "$i" "$m"; fi; done
"""
_FRAGMENT = r"""S={sysfs}
echo "$M h.gpu_csv"; if [ "${{GR:-absent}}" = absent ]; then echo absent; else printf '%s\n' "$GQ"; echo "rc $GR"; fi
echo "$M h.gpu_xml"; if command -v nvidia-smi >/dev/null 2>&1; then {{ nvidia-smi -q -x 2>&1; echo "rc $?"; }} | sed -e '/<supported_clocks>/,/<\/supported_clocks>/d' -e 's/^[[:space:]]*//'; else echo absent; fi
echo "$M h.kmsg"; if command -v dmesg >/dev/null 2>&1; then {{ dmesg 2>&1; echo "rc $?"; }} | grep -E 'NVRM: Xid|^rc [0-9]+$|^dmesg: '; echo "src dmesg"
elif command -v journalctl >/dev/null 2>&1; then {{ journalctl -k -b -q --no-pager 2>&1; echo "rc $?"; }} | grep -E 'NVRM: Xid|^rc [0-9]+$|^(Failed|No journal)'; echo "src journalctl"; else echo absent; fi
echo "$M h.pcie"; pl() {{ a=; b=; c=; e=; read -r a 2>/dev/null <"$d/current_link_speed"; read -r b 2>/dev/null <"$d/max_link_speed"; read -r c 2>/dev/null <"$d/current_link_width"; read -r e 2>/dev/null <"$d/max_link_width"; printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$a" "$b" "$c" "$e"; }}
for d in "$S"/bus/pci/devices/*; do v=; c=; read -r v 2>/dev/null <"$d/vendor"; read -r c 2>/dev/null <"$d/class"; case "$v:$c" in 0x10de:0x0302*|0x10de:0x0300*) pl gpu "${{d##*/}}" "${{d##*/}}";; esac; done
for h in "$S"/class/infiniband/*; do d=$h/device; [ -e "$d" ] || continue; s=; while IFS== read -r k v; do [ "$k" = PCI_SLOT_NAME ] && s=$v; done 2>/dev/null <"$d/uevent"; pl hca "${{h##*/}}" "$s"; done
{ib}echo "$M h.modules"; for m in {modules}; do [ -d "$S/module/$m" ] && echo "$m"; done; true
echo "$M h.nccl"; for f in /etc/nccl.conf "$HOME/.nccl.conf"; do [ -e "$f" ] || continue; echo "file $f"; if [ -r "$f" ]; then while IFS= read -r l || [ -n "$l" ]; do printf 'line %s\n' "$l"; done <"$f"; else echo "unreadable $f"; fi; done
export -p | while IFS= read -r l; do case $l in "export NCCL_"*) echo "env ${{l#export }}";; "declare -x NCCL_"*) echo "env ${{l#declare -x }}";; esac; done
echo "$M h.lspci"; if command -v lspci >/dev/null 2>&1; then lspci -vvv -d ::0604 2>&1; echo "rc $?"; else echo absent; fi
"""


def health_fragment(sysfs_root: str = "/sys") -> str:
    """The health part of the facts script (it expects ``$M``, the section marker, to be set).

    Raises:
        ValueError: ``sysfs_root`` is empty or holds a newline.
    """
    if not sysfs_root or "\n" in sysfs_root:
        raise ValueError(f"bad sysfs_root {sysfs_root!r}")
    return _FRAGMENT.format(sysfs=_quoted_root(sysfs_root), modules=" ".join(MODULES), ib=_IB.replace("{{", "{").replace("}}", "}"))


def _quoted_root(sysfs_root: str) -> str:
    if not sysfs_root or "\n" in sysfs_root:
        raise ValueError(f"bad sysfs_root {sysfs_root!r}")
    return shlex.quote(sysfs_root.rstrip("/") or "/")


def ib_script(sysfs_root: str = "/sys", marker: str = "::clusterproof-facts") -> str:
    """Only the ``h.ib`` section (ports and counters), as a whole script: the before/after counter reads."""
    return f"M={shlex.quote(marker)}\nS={_quoted_root(sysfs_root)}\n" + _IB.replace("{{", "{").replace("}}", "}")
