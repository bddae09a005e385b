"""Node facts (hostname, clock, kernel, CPU, memory, NICs, GPUs, mpirun, binaries, GID table) in one round trip.

:func:`facts_command` builds ONE POSIX ``sh`` command whose output has a section per fact; :func:`parse_facts`
turns that text into :class:`NodeFacts`; :func:`gather_facts` runs it on many nodes in parallel over an
:class:`~clusterproof.nodes.ssh.SshPool` and estimates each node's clock offset from the send/receive times.

The command only uses shell builtins where it touches many files (``read -r`` with redirects, globs,
``case``), never a ``$(cat file)`` subshell per file: on a node, a subshell plus an exec costs about 1.5 ms of
CPU, and the sandbox runs 32 "nodes" on 2 cores. External programs run once each: ``date`` (sub-second
epoch), ``mpirun --version`` and ``nvidia-smi`` (only when present).
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from clusterproof.errors import CommandFailed, ParseError
from clusterproof.results import to_frame

if TYPE_CHECKING:
    from clusterproof.nodes.ssh import SshPool

#: Prefix of the line that starts each section of the facts output.
MARKER = "::clusterproof-facts"
SECTIONS: tuple[str, ...] = ("hostname", "epoch", "kernel", "cpu", "mem", "nic", "gpu", "mpirun", "bin", "gids", "end")

# One fact per section. `read -r x 2>/dev/null <file`: the stderr redirect comes first so that a missing
# file is silent. /proc/cpuinfo is read only up to the end of the first processor block: dash reads a file one
# byte per syscall, so the whole file of a 224-core node (300 KB) would cost ~100 ms; the count comes from
# /sys/devices/system/cpu/online (the same online CPUs cpuinfo lists), with a full count as the fallback.
_SCRIPT = r"""M='{marker}'
echo "$M hostname"; h=; read -r h 2>/dev/null </proc/sys/kernel/hostname || h=$(uname -n); printf '%s\n' "$h"
echo "$M epoch"; date +%s.%N
echo "$M kernel"; k=; read -r k 2>/dev/null </proc/sys/kernel/osrelease || k=$(uname -r); printf '%s\n' "$k"
echo "$M cpu"; o=; read -r o 2>/dev/null </sys/devices/system/cpu/online; m=; n=0
while IFS= read -r l; do case $l in
  processor*) n=$((n+1));;
  'model name'*|'cpu model'*|Hardware*|'CPU part'*) [ -n "$m" ] || m=${{l#*: }};;
  '') [ -n "$o" ] && [ -n "$m" ] && break;;
esac; done </proc/cpuinfo
printf 'online %s\ncount %s\nmodel %s\n' "$o" "$n" "$m"
echo "$M mem"; while read -r a b c; do [ "$a" = MemTotal: ] && {{ printf '%s %s\n' "$b" "$c"; break; }}; done </proc/meminfo
echo "$M nic"; for d in /sys/class/net/*; do [ -e "$d/mtu" ] || continue; m=; s=; read -r m 2>/dev/null <"$d/mtu"; read -r s 2>/dev/null <"$d/operstate"; printf '%s %s %s\n' "${{d##*/}}" "$m" "$s"; done
echo "$M gpu"; GR=absent; if command -v nvidia-smi >/dev/null 2>&1; then GQ=$(nvidia-smi --query-gpu={gpu_query} --format=csv,noheader 2>&1); GR=$?
if [ "$GR" = 0 ]; then printf '%s\n' "$GQ" | while IFS=, read -r _ n b _; do [ -n "$b" ] && printf '%s, %s\n' "${{n# }}" "${{b# }}"; done; else printf '%s\n' "$GQ"; fi; echo "rc $GR"; fi
echo "$M mpirun"; if command -v mpirun; then mpirun --version 2>&1 </dev/null; fi
echo "$M bin"{bin_loop}
echo "$M gids"; ({gid_command})
{health}echo "$M end"
"""


@dataclass
class NodeFacts:
    """What one node is. ``mem_gib`` is MemTotal in GiB; ``nics`` maps interface -> MTU; ``nic_state`` maps
    interface -> operstate (``up``, ``down``, ``unknown`` for lo); ``gpus`` holds ``"name, pci.bus_id"`` per
    GPU (empty without ``nvidia-smi``); ``mpirun`` is the first line of ``mpirun --version`` (None when absent);
    ``binaries`` maps each requested binary to "exists and is executable"; ``gids`` is the GID table with
    :data:`clusterproof.network.rdma.GID_COLUMNS`. ``probe_rtt_s`` (round trip of the facts command) and
    ``clock_offset_s`` (node clock minus local clock, estimated at the midpoint of the round trip) are set by
    :func:`gather_facts`; NaN when parsed from text alone.
    """

    node: str
    hostname: str
    epoch: float
    kernel: str
    cpu_model: str
    cpus: int
    mem_gib: float
    gpus: list[str]
    gpu_model: str | None
    nics: dict[str, int]
    nic_state: dict[str, str]
    mpirun: str | None
    binaries: dict[str, bool]
    gids: pd.DataFrame
    probe_rtt_s: float = math.nan
    clock_offset_s: float = math.nan
    host: str = ""
    mpirun_path: str | None = None
    #: nvidia-smi exists but failed (driver problem): its output, so the suite can show it.
    gpu_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def facts_command(sysfs_root: str = "/sys", binaries: Sequence[str] = ()) -> str:
    """The facts command for ``sh -c``: one round trip, builtins for every per-file read.

    Args:
        sysfs_root: where ``class/infiniband`` lives on the nodes (for the GID table).
        binaries: paths to test with ``[ -x ]``; a name without ``/`` is looked up in PATH.

    Returns:
        ``sh -c '<script>'`` as one shell-quoted string.

    Raises:
        ValueError: a binary name is empty or contains a newline.
    """
    from clusterproof.network.rdma import remote_gid_command

    for b in binaries:
        if not b or "\n" in b:
            raise ValueError(f"bad binary path {b!r}")
    bin_loop = ""
    if binaries:  # `for b in ; do` would be a syntax error, so no loop at all without binaries
        names = " ".join(shlex.quote(b) for b in binaries)
        bin_loop = (
            f"; for b in {names}; do case $b in */*) [ -x \"$b\" ];; *) command -v \"$b\" >/dev/null 2>&1;; esac"
            ' && echo "1 $b" || echo "0 $b"; done'
        )
    from clusterproof.nodes.health_command import GPU_QUERY, health_fragment

    # One nvidia-smi --query-gpu for the `gpu` section and the health section h.gpu_csv (which prints $GQ/$GR).
    script = _SCRIPT.format(marker=MARKER, bin_loop=bin_loop, gid_command=remote_gid_command(sysfs_root),
                            gpu_query=",".join(GPU_QUERY), health=health_fragment(sysfs_root))
    return shlex.join(["sh", "-c", script])


def _split_sections(node: str, text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARKER + " "):
            name = line[len(MARKER) + 1 :].strip()
            current = sections.setdefault(name, [])
        elif current is not None:
            current.append(line)
    missing = [s for s in SECTIONS if s not in sections]
    if missing:
        raise ParseError(
            f"{node}: facts output has no {', '.join(repr(m) for m in missing)} section(s) "
            f"(truncated, or not the output of facts_command?); first line: {text.strip().splitlines()[:1]}"
        )
    return sections


def _one_line(node: str, section: str, lines: list[str]) -> str:
    values = [ln.strip() for ln in lines if ln.strip()]
    if len(values) != 1:
        raise ParseError(f"{node}: facts section {section!r}: expected one line, got {values!r}")
    return values[0]


def _cpu_count_from_ranges(ranges: str) -> int:
    """``"0-3,8-11"`` -> 8 (the kernel's cpu list format)."""
    total = 0
    for part in ranges.split(","):
        lo, _, hi = part.partition("-")
        total += (int(hi) - int(lo) + 1) if hi else 1
    return total


def _parse_cpu(node: str, lines: list[str]) -> tuple[str, int]:
    fields = {}
    for ln in lines:
        key, _, value = ln.partition(" ")
        fields[key] = value.strip()
    if not {"online", "count", "model"} <= set(fields):
        raise ParseError(f"{node}: facts section 'cpu': expected online/count/model lines, got {lines!r}")
    try:
        cpus = _cpu_count_from_ranges(fields["online"]) if fields["online"] else int(fields["count"])
    except ValueError:
        raise ParseError(f"{node}: facts section 'cpu': bad CPU list {fields['online']!r} / count {fields['count']!r}") from None
    if cpus < 1:
        raise ParseError(f"{node}: facts section 'cpu': no CPUs found ({lines!r})")
    return fields["model"] or "unknown", cpus


def _parse_mem(node: str, lines: list[str]) -> float:
    value = _one_line(node, "mem", lines).split()
    if len(value) != 2 or not value[0].isdigit() or value[1] != "kB":
        raise ParseError(f"{node}: facts section 'mem': expected '<n> kB' from MemTotal, got {' '.join(value)!r}")
    return int(value[0]) / (1 << 20)


def _parse_nics(node: str, lines: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    mtus: dict[str, int] = {}
    states: dict[str, str] = {}
    for ln in lines:
        parts = ln.split()
        if not parts:
            continue
        if len(parts) not in (2, 3) or not parts[1].isdigit():
            raise ParseError(f"{node}: facts section 'nic': expected 'name mtu operstate', got {ln!r}")
        mtus[parts[0]] = int(parts[1])
        states[parts[0]] = parts[2] if len(parts) == 3 else "unknown"
    return mtus, states


def _parse_gpus(lines: list[str]) -> tuple[list[str], str | None, str | None]:
    """Returns (gpus, model, error). No lines: nvidia-smi absent."""
    if not lines:
        return [], None, None
    rc_line = lines[-1].strip()
    body = [ln.strip() for ln in lines[:-1] if ln.strip()]
    if rc_line != "rc 0":
        return [], None, "\n".join([*body, f"(nvidia-smi exit code {rc_line.removeprefix('rc ')})"])
    models = sorted({g.split(",")[0].strip() for g in body})
    return body, (", ".join(models) if models else None), None


def _parse_mpirun(lines: list[str]) -> tuple[str | None, str | None]:
    values = [ln.strip() for ln in lines if ln.strip()]
    if not values:
        return None, None
    path = values[0]
    version = next((v for v in values[1:] if not v.startswith(("Report bugs", "http"))), None)
    return version or path, path


def _parse_binaries(node: str, lines: list[str]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for ln in lines:
        if not ln:
            continue
        flag, _, path = ln.partition(" ")
        if flag not in ("0", "1") or not path:
            raise ParseError(f"{node}: facts section 'bin': expected '0|1 path', got {ln!r}")
        out[path] = flag == "1"
    return out


def parse_facts(node: str, text: str) -> NodeFacts:
    """Parse the output of :func:`facts_command` from node ``node``.

    Returns:
        The node's :class:`NodeFacts` (``probe_rtt_s``/``clock_offset_s`` NaN; :func:`gather_facts` sets them).

    Raises:
        ParseError: a section is missing or holds garbage; the message names the node and the section.
    """
    from clusterproof.network.rdma import parse_gid_dump

    s = _split_sections(node, text)
    hostname = _one_line(node, "hostname", s["hostname"])
    epoch_text = _one_line(node, "epoch", s["epoch"])
    try:
        epoch = float(epoch_text)
    except ValueError:
        raise ParseError(f"{node}: facts section 'epoch': not a time: {epoch_text!r} (needs GNU date +%s.%N)") from None
    if not math.isfinite(epoch) or epoch <= 0:
        raise ParseError(f"{node}: facts section 'epoch': not a time: {epoch_text!r}")
    cpu_model, cpus = _parse_cpu(node, s["cpu"])
    nics, nic_state = _parse_nics(node, s["nic"])
    gpus, gpu_model, gpu_error = _parse_gpus(s["gpu"])
    mpirun, mpirun_path = _parse_mpirun(s["mpirun"])
    try:
        gids = parse_gid_dump("\n".join(s["gids"]))
    except ParseError as e:
        raise ParseError(f"{node}: facts section 'gids': {e}") from None
    return NodeFacts(
        node=node,
        hostname=hostname,
        epoch=epoch,
        kernel=_one_line(node, "kernel", s["kernel"]),
        cpu_model=cpu_model,
        cpus=cpus,
        mem_gib=_parse_mem(node, s["mem"]),
        gpus=gpus,
        gpu_model=gpu_model,
        nics=nics,
        nic_state=nic_state,
        mpirun=mpirun,
        binaries=_parse_binaries(node, s["bin"]),
        gids=gids,
        mpirun_path=mpirun_path,
        gpu_error=gpu_error,
    )


def gather_facts(
    pool: SshPool, nodes: Sequence[str] | None = None, sysfs_root: str = "/sys", binaries: Sequence[str] = (),
    raw: dict[str, str] | None = None,
) -> dict[str, NodeFacts | Exception]:
    """Collect :class:`NodeFacts` from many nodes in parallel: one command, one round trip per node.

    Each connection is opened before the command is sent, so that the timed round trip is the command alone; the clock
    offset is ``epoch - (t_send + t_recv) / 2`` on the local wall clock, accurate to about half the round trip
    (``probe_rtt_s``).

    ``raw``, when given, receives each answering node's whole output (node -> text), parsed or not: the
    health checks read their own sections from it, and the suites keep it under ``reports/<run>/logs/``.

    Returns:
        node name -> facts, or the exception for that node (:class:`NodeUnreachable`, ``CommandFailed`` when
        the command failed, :class:`ParseError`), in inventory order.
    """
    command = facts_command(sysfs_root, binaries)

    def one(name: str) -> NodeFacts | Exception:
        pool.connect(name)  # connect first: the timed round trip must be the command alone
        result = pool.run(name, command)
        t_send = result.sent_at
        t_recv = t_send + result.seconds  # when the exit status arrived, before the channel was closed
        if raw is not None:
            raw[name] = result.stdout
        try:
            result.check()
        except CommandFailed as e:
            return e
        try:
            facts = parse_facts(name, result.stdout)
        except ParseError as e:
            return e
        facts.probe_rtt_s = t_recv - t_send
        facts.clock_offset_s = facts.epoch - (t_send + t_recv) / 2
        facts.host = pool.node(name).host
        return facts

    return dict(pool.map_nodes(one, nodes))


def facts_frame(facts: Mapping[str, NodeFacts | Exception] | Sequence[NodeFacts]) -> pd.DataFrame:
    """One row per node with :data:`clusterproof.results.NODE_COLUMNS` (then a few extra columns).

    Nodes whose value is an exception are left out. ``nics`` is ``"eth0:1500,lo:65536"``, ``gpus`` the GPU
    count.
    """
    items = list(facts.values()) if isinstance(facts, Mapping) else list(facts)
    rows: list[Mapping[str, Any]] = []
    for f in items:
        if isinstance(f, BaseException):
            continue
        rows.append(
            {
                "node": f.node,
                "host": f.host,
                "hostname": f.hostname,
                "kernel": f.kernel,
                "cpu_model": f.cpu_model,
                "cpus": f.cpus,
                "mem_gib": round(f.mem_gib, 2),
                "gpus": len(f.gpus),
                "gpu_model": f.gpu_model,
                "nics": ",".join(f"{name}:{mtu}" for name, mtu in sorted(f.nics.items())),
                "clock_offset_s": f.clock_offset_s,
                "probe_rtt_s": f.probe_rtt_s,
                "mpirun": f.mpirun,
                "gid_rows": len(f.gids),
            }
        )
    return to_frame("nodes", rows)
