"""Node facts (hostname, clock, kernel, CPU, memory, NICs, GPUs, mpirun, binaries, GID table) in one round trip.

:func:`facts_command` builds ONE POSIX ``sh`` command whose output has a section per fact; :func:`parse_facts`
turns that text into :class:`NodeFacts`, **section by section**: a section that is missing or holds
garbage is recorded in :attr:`NodeFacts.section_errors` (with the offending line) and leaves its fields at their
"unknown" defaults, while every other section is still parsed, so one bad file on a node fails only the test of
that fact and the node stays reachable. Each section has one parser in :data:`SECTION_PARSERS`
(``parser(facts, lines)`` sets fields or raises :class:`ParseError`); to add a fact, add its lines to the script
and its parser there (put free-form results in :attr:`NodeFacts.extra`). :func:`section_problems` is what a test
asks before it reads a fact; :func:`gather_facts` runs it on many nodes in parallel over an
:class:`~clusterproof.nodes.ssh.SshPool` and estimates each node's clock offset from the send/receive times.

The command only uses shell builtins where it touches many files (``read -r`` with redirects, globs,
``case``), never a ``$(cat file)`` subshell per file: on a node, a subshell plus an exec costs about 1.5 ms of
CPU, and the sandbox runs 32 "nodes" on 2 cores. External programs run once each: ``date`` (sub-second
epoch), ``mpirun --version`` and ``nvidia-smi`` (only when present).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from clusterproof.errors import CommandFailed, ParseError
from clusterproof.results import to_frame

if TYPE_CHECKING:
    from clusterproof.nodes.ssh import SshPool

#: Prefix of the line that starts each section of the facts output.
MARKER = "::clusterproof-facts"
SECTIONS: tuple[str, ...] = ("hostname", "epoch", "kernel", "cpu", "mem", "nic", "gpu", "mpirun", "bin", "gids", "nccl", "end")
#: Sections older facts output lacks: their absence is no error.
OPTIONAL_SECTIONS = frozenset({"nccl"})

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
echo "$M nccl"; IFS=:; for d in $LD_LIBRARY_PATH; do for f in "$d"/libnccl.so.2.*; do [ -e "$f" ] && echo "ld $f"; done; done; unset IFS; if command -v ldconfig >/dev/null 2>&1; then ldconfig -p 2>/dev/null | while read -r n r; do case $n in libnccl.so.2) echo "cache $(readlink -f "${{r##*=> }}")";; esac; done; fi; for f in /usr/lib/x86_64-linux-gnu/libnccl.so.2.* /usr/lib/aarch64-linux-gnu/libnccl.so.2.* /usr/lib64/libnccl.so.2.* /usr/local/lib/libnccl.so.2.* /usr/local/cuda/lib64/libnccl.so.2.*; do [ -e "$f" ] && echo "dir $f"; done
{health}echo "$M end"
"""


def _empty_gids() -> pd.DataFrame:
    from clusterproof.network.rdma import GID_COLUMNS

    return pd.DataFrame([], columns=list(GID_COLUMNS))


@dataclass
class NodeFacts:
    """What one node is. ``mem_gib`` is MemTotal in GiB; ``nics`` maps interface -> MTU; ``nic_state`` maps
    interface -> operstate (``up``, ``down``, ``unknown`` for lo); ``gpus`` holds ``"name, pci.bus_id"`` per
    GPU (empty without ``nvidia-smi``); ``mpirun`` is the first line of ``mpirun --version`` (None when absent);
    ``binaries`` maps each requested binary to "exists and is executable"; ``gids`` is the GID table with
    :data:`clusterproof.network.rdma.GID_COLUMNS`. ``probe_rtt_s`` (round trip of the facts command) and
    ``clock_offset_s`` (node clock minus local clock, estimated at the midpoint of the round trip) are set by
    :func:`gather_facts`; NaN when parsed from text alone.

    ``section_errors`` maps a section that could not be read to why (naming the node, the section and the
    line); that section's fields keep the defaults below, which mean "unknown", never a measured value.
    """

    node: str
    hostname: str = ""
    epoch: float = math.nan
    kernel: str = ""
    cpu_model: str = ""
    cpus: int = 0
    mem_gib: float = math.nan
    gpus: list[str] = field(default_factory=list)
    gpu_model: str | None = None
    nics: dict[str, int] = field(default_factory=dict)
    nic_state: dict[str, str] = field(default_factory=dict)
    mpirun: str | None = None
    binaries: dict[str, bool] = field(default_factory=dict)
    gids: pd.DataFrame = field(default_factory=_empty_gids)
    probe_rtt_s: float = math.nan
    clock_offset_s: float = math.nan
    host: str = ""
    mpirun_path: str | None = None
    #: nvidia-smi exists but failed (driver problem): its output, so the suite can show it.
    gpu_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    section_errors: dict[str, str] = field(default_factory=dict)
    #: The libnccl the node would load (``LD_LIBRARY_PATH``, then the loader cache, then the usual library
    #: directories) and its version from the file name (``libnccl.so.2.21.5`` -> ``"2.21.5"``); None when none
    #: was found, or the output had no ``nccl`` section (older facts output).
    nccl_version: str | None = None
    nccl_library: str | None = None


def section_problems(facts: NodeFacts, sections: Sequence[str]) -> list[str]:
    """Why each of ``sections`` could not be read on this node (empty when all of them were)."""
    return [facts.section_errors[s] for s in sections if s in facts.section_errors]


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
    if not sections:
        raise ParseError(
            f"{node}: facts output has no 'hostname' section, nor any other (not the output of facts_command?); "
            f"first line: {text.strip().splitlines()[:1]}"
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


def _hostname(f: NodeFacts, lines: list[str]) -> None:
    f.hostname = _one_line(f.node, "hostname", lines)


def _epoch(f: NodeFacts, lines: list[str]) -> None:
    epoch_text = _one_line(f.node, "epoch", lines)
    try:
        epoch = float(epoch_text)
    except ValueError:
        raise ParseError(f"{f.node}: facts section 'epoch': not a time: {epoch_text!r} (needs GNU date +%s.%N)") from None
    if not math.isfinite(epoch) or epoch <= 0:
        raise ParseError(f"{f.node}: facts section 'epoch': not a time: {epoch_text!r}")
    f.epoch = epoch


def _kernel(f: NodeFacts, lines: list[str]) -> None:
    f.kernel = _one_line(f.node, "kernel", lines)


def _cpu(f: NodeFacts, lines: list[str]) -> None:
    f.cpu_model, f.cpus = _parse_cpu(f.node, lines)


def _mem(f: NodeFacts, lines: list[str]) -> None:
    f.mem_gib = _parse_mem(f.node, lines)


def _nic(f: NodeFacts, lines: list[str]) -> None:
    f.nics, f.nic_state = _parse_nics(f.node, lines)


def _gpu(f: NodeFacts, lines: list[str]) -> None:
    f.gpus, f.gpu_model, f.gpu_error = _parse_gpus(lines)


def _mpirun(f: NodeFacts, lines: list[str]) -> None:
    f.mpirun, f.mpirun_path = _parse_mpirun(lines)


def _bin(f: NodeFacts, lines: list[str]) -> None:
    f.binaries = _parse_binaries(f.node, lines)


def _gids(f: NodeFacts, lines: list[str]) -> None:
    from clusterproof.network.rdma import parse_gid_dump

    try:
        f.gids = parse_gid_dump("\n".join(lines))
    except ParseError as e:
        raise ParseError(f"{f.node}: facts section 'gids': {e}") from None


_NCCL_FILE = re.compile(r"libnccl\.so\.(2\.\d+\.\d+)$")


def _parse_nccl(lines: list[str]) -> tuple[str | None, str | None]:
    """(version, path) of the first ``ld``/``cache``/``dir`` line naming a ``libnccl.so.2.X.Y``: the order the
    loader looks."""
    for ln in lines:
        _, _, path = ln.strip().partition(" ")
        found = _NCCL_FILE.search(path.strip())
        if found:
            return found.group(1), path.strip()
    return None, None


def _nccl(f: NodeFacts, lines: list[str]) -> None:
    f.nccl_version, f.nccl_library = _parse_nccl(lines)


#: Parses one section's lines into the node's facts, or raises ParseError naming the node, section and line.
SectionParser = Callable[[NodeFacts, list[str]], None]

#: Every section of the facts output and its parser, in output order ("end" only proves the output is complete).
SECTION_PARSERS: dict[str, SectionParser] = {
    "hostname": _hostname,
    "epoch": _epoch,
    "kernel": _kernel,
    "cpu": _cpu,
    "mem": _mem,
    "nic": _nic,
    "gpu": _gpu,
    "mpirun": _mpirun,
    "bin": _bin,
    "gids": _gids,
    "nccl": _nccl,
}


def parse_facts(node: str, text: str) -> NodeFacts:
    """Parse the output of :func:`facts_command` from node ``node``, section by section.

    Returns:
        The node's :class:`NodeFacts` (``probe_rtt_s``/``clock_offset_s`` NaN; :func:`gather_facts` sets them).
        A section that is missing (output cut off) or holds garbage is in ``section_errors``, named with the
        node, the section and the offending line; the other sections are parsed regardless.

    Raises:
        ParseError: the text has no section at all (not the output of the facts command).
    """
    sections = _split_sections(node, text)
    facts = NodeFacts(node=node)
    cut_off = "end" not in sections
    for name, parser in SECTION_PARSERS.items():
        lines = sections.get(name)
        if lines is None:
            if name in OPTIONAL_SECTIONS:
                continue
            why = "the output was cut off before it" if cut_off else "not in the output"
            facts.section_errors[name] = f"{node}: facts section {name!r} missing ({why})"
            continue
        try:
            parser(facts, lines)
        except ParseError as e:
            facts.section_errors[name] = str(e)
        except (ValueError, IndexError, KeyError) as e:  # a parser's own slip must not void the node
            facts.section_errors[name] = f"{node}: facts section {name!r}: unreadable ({type(e).__name__}: {e})"
    return facts


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
