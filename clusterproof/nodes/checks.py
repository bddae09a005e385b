"""Pure node checks on gathered :class:`~clusterproof.nodes.facts.NodeFacts`: each returns findings (a pass per node
judged fine, a failure per problem naming the node and the value, not tested when the node gave no facts).

``facts`` arguments are what :func:`~clusterproof.nodes.facts.gather_facts` returns per node: the facts, or the
error that kept us from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Evidence, Finding, Subject, node_subject
from clusterproof.nodes.facts import NodeFacts, section_problems
from clusterproof.nodes.health import facts_log_path

Gathered = NodeFacts | Exception | None


def reachable(facts: Mapping[str, Gathered], section: str | None = None) -> dict[str, NodeFacts]:
    """Nodes that gave facts (and, with ``section``, whose section was readable: the others fail their own tests)."""
    return {k: v for k, v in facts.items() if isinstance(v, NodeFacts) and (section is None or section not in v.section_errors)}


def facts_evidence(node: str) -> tuple[Evidence, ...]:
    """The node's raw facts output as kept in the run (``logs/facts/<node>.txt``): what a facts finding rests on."""
    return (Evidence(facts_log_path(node)),)


def _unreadable(criterion: Criterion, node: str, value: NodeFacts, *sections: str) -> Finding | None:
    """A failure quoting why the facts sections this check reads could not be parsed (the node stays reachable)."""
    problems = section_problems(value, sections)
    return fd.failed(criterion, node_subject(node), "\n".join(problems), evidence=facts_evidence(node)) if problems else None


def _unreached(criterion: Criterion, node: str, value: Gathered) -> Finding | None:
    """Not tested (the node gave no facts; :func:`check_reachable` fails it) or None when there are facts."""
    if isinstance(value, NodeFacts):
        return None
    return fd.not_tested(criterion, node_subject(node), f"{node}: no facts ({value or 'not gathered'}); see the reachability check")


def check_reachable(node: str, host: str, value: Gathered) -> list[Finding]:
    """The node answered over SSH with a hostname."""
    subject = node_subject(node)
    if value is None:
        return [fd.failed(Criterion.NODES_REACHABLE, subject, f"{node}: no facts were gathered")]
    if isinstance(value, Exception):
        return [fd.failed(Criterion.NODES_REACHABLE, subject, f"{node}: {value}")]
    if (bad := _unreadable(Criterion.NODES_REACHABLE, node, value, "hostname")) is not None:
        return [bad]
    if not value.hostname:
        return [fd.failed(Criterion.NODES_REACHABLE, subject, f"{node}: empty hostname from {host}")]
    return [fd.passed(Criterion.NODES_REACHABLE, subject, f"{node}: answered as {value.hostname}",
                      values={"rtt_s": value.probe_rtt_s})]


def check_hostnames_unique(facts: Mapping[str, Gathered]) -> list[Finding]:
    """No two nodes share a hostname (MPI and NCCL key on it): a failure per clashing node."""
    good = reachable(facts, "hostname")
    if not good:
        return [fd.not_tested(Criterion.NODE_FACTS, Subject("node_set", "all"), "no reachable node")]
    seen: dict[str, list[str]] = {}
    for name, f in good.items():
        seen.setdefault(f.hostname, []).append(name)
    out: list[Finding] = []
    for name, f in good.items():
        others = [n for n in seen[f.hostname] if n != name]
        if others:
            out.append(fd.failed(Criterion.NODE_FACTS, node_subject(name), f"{name}: hostname {f.hostname!r} also on "
                                 f"{', '.join(others)} (MPI and NCCL key on it)",
                                 evidence=facts_evidence(name) + tuple(e for o in others for e in facts_evidence(o))))
        else:
            out.append(fd.passed(Criterion.NODE_FACTS, node_subject(name), f"{name}: hostname {f.hostname!r} unique"))
    return out


def check_clock_skew(facts: Mapping[str, Gathered], max_skew_s: float) -> list[Finding]:
    """Node clocks agree within ``max_skew_s`` (``network.max_clock_skew_s``). When the spread is too wide, the
    node furthest from the median fails; the others pass when they are within the limit of the median."""
    good = reachable(facts, "epoch")
    subject = Subject("node_set", ",".join(sorted(good)) or "all")
    if len(good) < 2:
        return [fd.not_tested(Criterion.CLOCKS, subject, "fewer than two reachable nodes: no skew to measure")]
    offsets = {name: f.clock_offset_s for name, f in good.items()}
    spread = max(offsets.values()) - min(offsets.values())
    listed = ", ".join(f"{n} {o:+.3f} s" for n, o in sorted(offsets.items()))
    values = {"spread_s": spread, "limit_s": max_skew_s}
    if spread <= max_skew_s:
        return [fd.passed(Criterion.CLOCKS, subject, f"clock spread {spread:.3f} s across {len(good)} nodes "
                          f"(limit {max_skew_s:g} s)", values=values)]
    ordered = sorted(offsets.values())
    median = ordered[len(ordered) // 2]
    far = max(offsets, key=lambda n: abs(offsets[n] - median))
    return [fd.failed(Criterion.CLOCKS, node_subject(far),
                      f"clock skew {spread:.3f} s > {max_skew_s} s (network.max_clock_skew_s); furthest: {far} at "
                      f"{offsets[far]:+.3f} s; offsets to this machine: {listed}", values=values,
                      evidence=facts_evidence(far))]


def check_binaries(node: str, value: Gathered, binaries: Sequence[str], bin_dir: str) -> list[Finding]:
    """Every nccl-tests binary the inventory's collectives need exists and is executable on the node."""
    if (skip := _unreached(Criterion.NODE_FACTS, node, value)) is not None:
        return [skip]
    assert isinstance(value, NodeFacts)
    if (bad := _unreadable(Criterion.NODE_FACTS, node, value, "bin")) is not None:
        return [bad]
    missing = [b for b in binaries if not value.binaries.get(b)]
    if missing:
        return [fd.failed(Criterion.NODE_FACTS, node_subject(node), f"{node}: missing or not executable: "
                          f"{', '.join(missing)} (nccl_tests.bin_dir = {bin_dir})", evidence=facts_evidence(node))]
    return [fd.passed(Criterion.NODE_FACTS, node_subject(node), f"{node}: {len(binaries)} nccl-tests binaries present")]


def check_launcher(node: str, value: Gathered, launcher: str) -> list[Finding]:
    """mpirun is on the node's PATH when the launcher is mpirun (its daemons run on every node)."""
    subject = node_subject(node)
    if launcher != "mpirun":
        return [fd.not_tested(Criterion.NODE_FACTS, subject, f"launcher is {launcher}; mpirun not required")]
    if (skip := _unreached(Criterion.NODE_FACTS, node, value)) is not None:
        return [skip]
    assert isinstance(value, NodeFacts)
    if (bad := _unreadable(Criterion.NODE_FACTS, node, value, "mpirun")) is not None:
        return [bad]
    if not value.mpirun:
        return [fd.failed(Criterion.NODE_FACTS, subject, f"{node}: mpirun not found on PATH (OpenMPI must be "
                          "installed on every node for its daemons)", evidence=facts_evidence(node))]
    return [fd.passed(Criterion.NODE_FACTS, subject, f"{node}: {value.mpirun}")]


def check_facts_complete(node: str, value: Gathered) -> list[Finding]:
    """CPUs, memory, kernel and network interfaces were all read."""
    if (skip := _unreached(Criterion.NODE_FACTS, node, value)) is not None:
        return [skip]
    assert isinstance(value, NodeFacts)
    if (bad := _unreadable(Criterion.NODE_FACTS, node, value, "cpu", "mem", "kernel", "nic")) is not None:
        return [bad]
    problems = []
    if value.cpus < 1:
        problems.append(f"cpus = {value.cpus}")
    if value.mem_gib <= 0:
        problems.append(f"memory = {value.mem_gib} GiB")
    if not value.kernel:
        problems.append("no kernel version")
    if not value.nics:
        problems.append("no network interfaces")
    if problems:
        return [fd.failed(Criterion.NODE_FACTS, node_subject(node), f"{node}: incomplete facts: {'; '.join(problems)}",
                          evidence=facts_evidence(node))]
    return [fd.passed(Criterion.NODE_FACTS, node_subject(node), f"{node}: {value.cpus} CPUs, {value.mem_gib:.1f} GiB, "
                      f"kernel {value.kernel}, {len(value.nics)} interfaces")]


def check_host_keys(node: str, host: str, port: int, value: Gathered, *, strict: bool, source: str,
                    unverified_hosts: Sequence[str]) -> list[Finding]:
    """SSH verified the node's host key against known_hosts: strict checking is on, and this node's key was not
    accepted unverified."""
    subject = node_subject(node)
    if not strict:
        return [fd.failed(Criterion.STRICT_HOST_KEYS, subject, f"{source}: ssh.strict_host_keys is false: host keys "
                          "are accepted unverified, so anybody on the path can impersonate a node")]
    if (skip := _unreached(Criterion.STRICT_HOST_KEYS, node, value)) is not None:
        return [skip]
    unverified = [h for h in unverified_hosts if h in (host, f"[{host}]:{port}")]
    if unverified:
        return [fd.failed(Criterion.STRICT_HOST_KEYS, subject, f"{node}: host key accepted without a known_hosts entry "
                          f"({', '.join(unverified)})")]
    return [fd.passed(Criterion.STRICT_HOST_KEYS, subject, f"{node}: host key verified against known_hosts")]
