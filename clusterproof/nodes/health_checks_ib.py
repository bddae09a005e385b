"""Health checks of IB/RoCE ports, their error counters (absolute and growth during a run), the GPUDirect RDMA
module and the NCCL configuration: pure functions to findings, one subject per HCA port
(``Subject("hca_port", "node07/mlx5_1:1", node="node07")``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from clusterproof.findings import (
    Criterion,
    Evidence,
    Finding,
    Subject,
    failed,
    node_subject,
    not_tested,
    passed,
)
from clusterproof.nodes.health import NodeHealth, SectionError
from clusterproof.nodes.health_nccl import NcclSetting, hca_prefix_overmatch
from clusterproof.nodes.health_settings import HealthSettings
from clusterproof.nodes.health_sysfs import UNREADABLE, IbPort

IB = Criterion.IB_PORTS


def port_subject(node: str, port: IbPort) -> Subject:
    return Subject("hca_port", f"{node}/{port.hca}:{port.port}", node=node)


def _ev(h: NodeHealth, *lines: str) -> tuple[Evidence, ...]:
    return (Evidence(h.evidence_path, tuple(lines)),)


def select_ports(h: NodeHealth, hca: str | None = None) -> tuple[list[IbPort], list[Finding]]:
    """The node's ports (of one HCA when given; ``mlx5_0:1`` selects one port), or the findings saying why none."""
    if isinstance(h.ib, SectionError):
        return [], [failed(IB, node_subject(h.node), f"{h.node}: IB port attributes unusable: {h.ib.message}", evidence=_ev(h, *h.ib.lines[:5]))]
    ports = h.ib
    if hca:
        dev, _, num = hca.partition(":")
        ports = [p for p in ports if p.hca == dev and (not num or p.port == num)]
        if not ports:
            found = ", ".join(sorted({p.name for p in h.ib})) or "none"
            return [], [failed(IB, Subject("hca_port", f"{h.node}/{hca}", node=h.node),
                           f"{h.node}: HCA {hca} not found under class/infiniband (found: {found})")]
    if not ports:
        return [], [failed(IB, node_subject(h.node), f"{h.node}: no IB/RoCE port under class/infiniband")]
    return ports, []


def check_port_active(h: NodeHealth, s: HealthSettings, hca: str | None = None) -> list[Finding]:
    """state ACTIVE and phys_state LinkUp."""
    ports, why = select_ports(h, hca)
    if why:
        return why
    out = []
    for p in ports:
        raw = f"state: {p.attrs.get('state', UNREADABLE)} phys_state: {p.attrs.get('phys_state', UNREADABLE)}"
        if p.state == "ACTIVE" and p.phys_state == "LinkUp":
            out.append(passed(IB, port_subject(h.node, p), f"{h.node} {p.name}: ACTIVE, LinkUp"))
        else:
            out.append(failed(IB, port_subject(h.node, p), f"{h.node} {p.name}: state {p.state}, phys_state {p.phys_state}; "
                              "expected ACTIVE, LinkUp", evidence=_ev(h, raw)))
    return out


def check_port_rate(h: NodeHealth, s: HealthSettings, hca: str | None = None) -> list[Finding]:
    """rate = ``health.ib_rate_gbps`` and link layer as ``health.link_layer``."""
    ports, why = select_ports(h, hca)
    if why:
        return why
    out = []
    for p in ports:
        problems = []
        rate = p.rate_gbps
        if s.ib_rate_gbps and rate != s.ib_rate_gbps:
            problems.append(f"rate {p.attrs.get('rate', UNREADABLE)!r}, expected {s.ib_rate_gbps} Gb/sec (health.ib_rate_gbps)")
        if s.link_layer != "any" and p.link_layer != s.link_layer:
            problems.append(f"link layer {p.link_layer}, expected {s.link_layer} (health.link_layer)")
        values = {"rate_gbps": rate, "expected_gbps": s.ib_rate_gbps}
        if problems:
            out.append(failed(IB, port_subject(h.node, p), f"{h.node} {p.name}: {'; '.join(problems)}", values=values,
                              evidence=_ev(h, f"rate: {p.attrs.get('rate', UNREADABLE)}", f"link_layer: {p.link_layer}")))
        else:
            out.append(passed(IB, port_subject(h.node, p), f"{h.node} {p.name}: {p.attrs.get('rate')} over {p.link_layer}", values=values))
    return out


def check_roce_mtu(h: NodeHealth, s: HealthSettings, hca: str | None = None) -> list[Finding]:
    """The netdev behind each RoCE port has MTU >= ``health.min_roce_mtu`` (InfiniBand ports: not applicable)."""
    ports, why = select_ports(h, hca)
    if why:
        return why
    out = []
    for p in ports:
        subj = port_subject(h.node, p)
        if p.link_layer != "Ethernet":
            out.append(not_tested(IB, subj, f"{p.name} is {p.link_layer}: no RoCE netdev MTU to check"))
        elif p.netdev is None:
            out.append(failed(IB, subj, f"{h.node} {p.name}: RoCE port without a netdev in gid_attrs/ndevs/0"))
        elif p.netdev_mtu is None:
            out.append(failed(IB, subj, f"{h.node} {p.name}: MTU of {p.netdev} unreadable ({p.netdev_mtu_text!r})"))
        elif p.netdev_mtu < s.min_roce_mtu:
            out.append(failed(IB, subj, f"{h.node} {p.name}: netdev {p.netdev} MTU {p.netdev_mtu} < {s.min_roce_mtu} (health.min_roce_mtu)",
                              evidence=_ev(h, f"{p.netdev} mtu {p.netdev_mtu}"), values={"mtu": p.netdev_mtu, "min": s.min_roce_mtu}))
        else:
            out.append(passed(IB, subj, f"{h.node} {p.name}: netdev {p.netdev} MTU {p.netdev_mtu}", values={"mtu": p.netdev_mtu}))
    return out


def check_port_counters(h: NodeHealth, s: HealthSettings, hca: str | None = None) -> list[Finding]:
    """Each counter of ``health.counter_limits`` readable and within its limit (counts since the driver loaded)."""
    ports, why = select_ports(h, hca)
    if why:
        return why
    out = []
    for p in ports:
        problems, unreadable = [], []
        for name, limit in sorted(s.counter_limits.items()):
            if name not in p.counters:
                continue  # this HCA does not have that counter
            value = p.counter(name)
            if value is None:
                unreadable.append(f"{name}: {p.counters[name]!r}")
            elif value > limit:
                problems.append(f"{name} = {value} > {limit}")
        subj = port_subject(h.node, p)
        if unreadable:
            out.append(failed(IB, subj, f"{h.node} {p.name}: counter(s) unreadable: {'; '.join(unreadable)}", evidence=_ev(h, *unreadable)))
        if problems:
            out.append(failed(IB, subj, f"{h.node} {p.name}: error counters above their limits (health.counter_limits): {'; '.join(problems)}",
                              evidence=_ev(h, *problems)))
        if not problems and not unreadable:
            judged = [n for n in s.counter_limits if n in p.counters]
            out.append(passed(IB, subj, f"{h.node} {p.name}: {len(judged)} error counters within their limits"))
    return out


CounterSnapshot = Mapping[str, Mapping[tuple[str, str], Mapping[str, str]]]  # node -> (hca, port) -> counter -> value


def check_counter_growth(before: CounterSnapshot, after: CounterSnapshot, s: HealthSettings, run: str,
                         evidence: Mapping[str, str] | None = None) -> list[Finding]:
    """Counters read before and after a run (``run`` names it, e.g. the collective sweep): growth beyond
    ``health.counter_growth`` names node, HCA, port, counter and the run. A port or counter that disappeared,
    or a counter that went backwards (driver reload), is a finding too. ``evidence``: node -> the raw "after" log."""
    out: list[Finding] = []
    for node in sorted(set(before) | set(after)):
        b, a = before.get(node), after.get(node)
        if b is None or a is None:
            out.append(not_tested(IB, node_subject(node), f"{node}: counters not read {'before' if b is None else 'after'} {run}"))
            continue
        for key in sorted(b):
            hca, port = key
            subj = Subject("hca_port", f"{node}/{hca}:{port}", node=node)
            if key not in a:
                out.append(failed(IB, subj, f"{node} {hca} port {port}: gone after {run}"))
                continue
            grew, odd = [], []
            for name, limit in sorted(s.counter_growth.items()):
                vb, va = b[key].get(name), a[key].get(name)
                if vb is None or va is None:
                    continue
                if not (vb.strip().isdigit() and va.strip().isdigit()):
                    odd.append(f"{name} unreadable ({vb!r} -> {va!r})")
                    continue
                delta = int(va) - int(vb)
                if delta < 0:
                    odd.append(f"{name} went back from {vb} to {va} (counters reset during {run}?)")
                elif delta > limit:
                    grew.append((name, int(vb), int(va), delta, limit))
            ev = (Evidence((evidence or {}).get(node), tuple(f"{n}: {x} -> {y} (+{d}, limit {lim})" for n, x, y, d, lim in grew) + tuple(odd)),)
            if grew:
                desc = "; ".join(f"{n} grew by {d} ({x} -> {y}, limit {lim})" for n, x, y, d, lim in grew)
                out.append(failed(IB, subj, f"{node} {hca} port {port}: during {run}: {desc} (health.counter_growth)", evidence=ev,
                                  values={n: d for n, _, _, d, _ in grew}))
            elif odd:
                out.append(failed(IB, subj, f"{node} {hca} port {port}: during {run}: {'; '.join(odd)}", evidence=ev))
            else:
                out.append(passed(IB, subj, f"{node} {hca} port {port}: no error counter grew during {run}"))
    return out


def check_gpudirect_module(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """``nvidia_peermem`` (or the older ``nv_peer_mem``) loaded."""
    subject = node_subject(h.node)
    if isinstance(h.modules, SectionError):
        return [failed(IB, subject, f"{h.node}: kernel modules unreadable: {h.modules.message}")]
    if not s.require_peermem:
        return [not_tested(IB, subject, "health.require_peermem is false")]
    loaded = {"nvidia_peermem", "nv_peer_mem"} & h.modules
    if loaded:
        return [passed(IB, subject, f"{h.node}: GPUDirect RDMA module {', '.join(sorted(loaded))} loaded")]
    return [failed(IB, subject, f"{h.node}: neither nvidia_peermem nor nv_peer_mem is loaded: no GPUDirect RDMA "
                   f"(loaded: {', '.join(sorted(h.modules)) or 'none of the GPU/RDMA modules'})", evidence=_ev(h))]


def check_nccl_config(h: NodeHealth, s: HealthSettings, launch: Sequence[NcclSetting] = ()) -> list[Finding]:
    """No result-changing NCCL setting forced on the node (config files, login environment) or in the launch
    environment, unless ``health.allowed_nccl`` names it; no NCCL_IB_HCA prefix that matches more HCAs than meant."""
    subject = node_subject(h.node)
    crit = Criterion.NCCL_CONFIG
    if isinstance(h.nccl, SectionError):
        return [failed(crit, subject, f"{h.node}: NCCL configuration unreadable: {h.nccl.message}")]
    settings = [*h.nccl.settings, *launch]
    hcas = sorted({p.hca for p in h.ib}) if not isinstance(h.ib, SectionError) else []
    problems, lines = [], []
    for st in settings:
        if st.name in s.result_changing_nccl and st.name not in s.allowed_nccl:
            problems.append(f"{st.name}={st.value} forced by {st.source}")
            lines.append(f"{st.source}: {st.name}={st.value}")
        if st.name == "NCCL_IB_HCA" and hcas:
            for entry, matched in hca_prefix_overmatch(st.value, hcas).items():
                problems.append(f"NCCL_IB_HCA={st.value} ({st.source}): {entry!r} is a prefix match for {', '.join(matched)} "
                                f"(write ={st.value.lstrip('^=')} for an exact match)")
                lines.append(f"{st.source}: NCCL_IB_HCA={st.value}")
    out = []
    if h.nccl.unreadable:
        out.append(failed(crit, subject, f"{h.node}: NCCL config file(s) exist but cannot be read: {', '.join(h.nccl.unreadable)}"))
    if problems:
        out.append(failed(crit, subject, f"{h.node}: {'; '.join(problems)}", evidence=_ev(h, *lines)))
    if not out:
        seen = ", ".join(f"{x.name}" for x in settings) or "none"
        out.append(passed(crit, subject, f"{h.node}: no result-changing NCCL setting forced (NCCL settings seen: {seen})"))
    return out
