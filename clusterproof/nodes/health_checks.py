"""Health checks of GPUs, XIDs and PCIe links: pure functions from a :class:`NodeHealth` and the inventory's
:class:`HealthSettings` to findings. Every failure names the node, the device and the value against the
expectation; a section that could not be read fails that check for that node with the tool's own words.
"""

from __future__ import annotations

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
from clusterproof.nodes.health_gpu import GpuInfo, SmiFailed, SmiXml
from clusterproof.nodes.health_settings import HealthSettings
from clusterproof.nodes.health_sysfs import PcieLink
from clusterproof.nodes.health_xid import XID_TABLE, KernelLogFailed

GPU = Criterion.GPU_HEALTH


def _ev(h: NodeHealth, *lines: str) -> tuple[Evidence, ...]:
    return (Evidence(h.evidence_path, tuple(ln for ln in lines if ln)),)


def gpu_subject(node: str, gpu: GpuInfo) -> Subject:
    return Subject("gpu", f"{node}/{gpu.pci_address}", node=node)


def _section_failed(criterion: Criterion, h: NodeHealth, err: SectionError, what: str) -> list[Finding]:
    return [failed(criterion, node_subject(h.node), f"{h.node}: {what} unusable: {err.message}",
                   evidence=_ev(h, *err.lines[:5]))]


def _gpus(h: NodeHealth, criterion: Criterion = GPU) -> tuple[list[GpuInfo], SmiXml | None] | list[Finding]:
    """The node's GPUs (CSV rows, XML for the extra fields) or the findings that say why there are none."""
    csv_part, xml_part = h.gpu_csv, h.gpu_xml
    if isinstance(csv_part, SectionError):
        return _section_failed(criterion, h, csv_part, "nvidia-smi --query-gpu output")
    if isinstance(csv_part, SmiFailed):
        return [failed(criterion, node_subject(h.node), f"{h.node}: nvidia-smi failed (exit {csv_part.exit_code}): {csv_part.output}",
                       evidence=_ev(h, *csv_part.output.splitlines()[:5]))]
    if csv_part is None:
        return [failed(criterion, node_subject(h.node), f"{h.node}: nvidia-smi not found on PATH (no NVIDIA driver installed?)")]
    xml = xml_part if isinstance(xml_part, SmiXml) else None
    return csv_part, xml


def _xml_gpu(xml: SmiXml | None, gpu: GpuInfo) -> GpuInfo | None:
    if xml is None:
        return None
    return next((g for g in xml.gpus if g.pci_address == gpu.pci_address), None)


def check_gpu_count(h: NodeHealth, s: HealthSettings, sysfs_gpus: int | None = None) -> list[Finding]:
    """GPUs nvidia-smi lists = ``health.gpus_per_node`` (and the XML agrees with the CSV)."""
    got = _gpus(h)
    if isinstance(got, list):
        return got
    gpus, xml = got
    subject = node_subject(h.node)
    listed = ", ".join(g.pci_address for g in gpus) or "none"
    values = {"gpus": len(gpus), "expected": s.gpus_per_node}
    if len(gpus) != s.gpus_per_node:
        pci = f"; sysfs lists {sysfs_gpus} NVIDIA PCI devices" if sysfs_gpus is not None and sysfs_gpus != len(gpus) else ""
        return [failed(GPU, subject, f"{h.node}: nvidia-smi lists {len(gpus)} GPUs, expected {s.gpus_per_node} "
                       f"(health.gpus_per_node){pci}; listed: {listed}", evidence=_ev(h, f"GPUs: {listed}"), values=values)]
    if xml is not None and len(xml.gpus) != len(gpus):
        return [failed(GPU, subject, f"{h.node}: nvidia-smi -q -x shows {len(xml.gpus)} GPUs but --query-gpu {len(gpus)}",
                       evidence=_ev(h), values=values)]
    return [passed(GPU, subject, f"{h.node}: {len(gpus)} GPUs as expected", evidence=_ev(h, f"GPUs: {listed}"), values=values)]


def check_gpu_model(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """Every GPU is one of ``health.gpu_models`` (any model when the list is empty)."""
    got = _gpus(h)
    if isinstance(got, list):
        return got
    gpus, _ = got
    if not gpus:
        return [not_tested(GPU, node_subject(h.node), f"{h.node}: no GPU listed, no model to check")]
    out = []
    for g in gpus:
        ok = not s.gpu_models or g.name in s.gpu_models
        if ok:
            out.append(passed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: {g.name}"))
        else:
            out.append(failed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: model {g.name!r}, expected one of "
                              f"{', '.join(s.gpu_models)} (health.gpu_models)", evidence=_ev(h, f"{g.pci_address}, {g.name}")))
    return out


def check_gpu_persistence(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    got = _gpus(h)
    if isinstance(got, list):
        return got
    gpus, _ = got
    if not s.require_persistence_mode:
        return [not_tested(GPU, node_subject(h.node), "health.require_persistence_mode is false")]
    out = []
    for g in gpus:
        if g.persistence == "Enabled":
            out.append(passed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: persistence mode Enabled"))
        else:
            out.append(failed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: persistence mode {g.persistence or 'N/A'}, "
                              "expected Enabled (health.require_persistence_mode)", evidence=_ev(h, f"persistence_mode: {g.persistence}")))
    return out or [not_tested(GPU, node_subject(h.node), f"{h.node}: no GPU listed")]


def check_gpu_ecc(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """ECC on, uncorrectable counts (volatile and aggregate) within ``health.max_uncorrectable_ecc``, no row
    remap or page retirement pending (from the XML)."""
    got = _gpus(h)
    if isinstance(got, list):
        return got
    gpus, xml = got
    out = []
    for g in gpus:
        x = _xml_gpu(xml, g)
        problems = []
        if s.require_ecc and g.ecc_mode != "Enabled":
            problems.append(f"ECC mode {g.ecc_mode or 'N/A'}, expected Enabled")
        for label, value in (("volatile", g.ecc_uncorrected_volatile), ("aggregate", g.ecc_uncorrected_aggregate)):
            if value is not None and value > s.max_uncorrectable_ecc:
                problems.append(f"{value} uncorrectable ECC errors ({label}), limit {s.max_uncorrectable_ecc}")
        if x is not None and s.fail_on_pending_remap:
            if x.remap_pending:
                problems.append("row remapping pending (needs a GPU reset)")
            if x.remap_failure:
                problems.append("row remapping failure occurred")
            if x.retired_pending:
                problems.append("page retirement pending (needs a GPU reset)")
        subj = gpu_subject(h.node, g)
        values = {"ecc_uncorrected_volatile": g.ecc_uncorrected_volatile, "ecc_uncorrected_aggregate": g.ecc_uncorrected_aggregate,
                  "limit": s.max_uncorrectable_ecc}
        if problems:
            out.append(failed(GPU, subj, f"{h.node} GPU {g.pci_address}: {'; '.join(problems)}", values=values,
                              evidence=_ev(h, f"ecc.mode.current={g.ecc_mode} volatile={g.ecc_uncorrected_volatile} aggregate={g.ecc_uncorrected_aggregate}")))
        else:
            out.append(passed(GPU, subj, f"{h.node} GPU {g.pci_address}: ECC {g.ecc_mode}, no uncorrectable error", values=values))
    return out or [not_tested(GPU, node_subject(h.node), f"{h.node}: no GPU listed")]


def check_gpu_throttle(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """No GPU has one of ``health.failing_throttle_reasons`` active (from the XML's clocks event reasons)."""
    got = _gpus(h)
    if isinstance(got, list):
        return got
    gpus, xml = got
    if xml is None:
        why = h.gpu_xml.message if isinstance(h.gpu_xml, SectionError) else "nvidia-smi -q -x gave no usable XML"
        return [failed(GPU, node_subject(h.node), f"{h.node}: clock event reasons unknown: {why}", evidence=_ev(h))]
    out = []
    for g in gpus:
        x = _xml_gpu(xml, g)
        if x is None:
            out.append(failed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: missing from nvidia-smi -q -x"))
            continue
        bad = [r for r in x.active_throttle if r in s.failing_throttle_reasons]
        if bad:
            out.append(failed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: clocks held down by {', '.join(bad)} "
                              f"(active; health.failing_throttle_reasons)", evidence=_ev(h, *(f"clocks_event_reason_{r}: Active" for r in bad))))
        else:
            out.append(passed(GPU, gpu_subject(h.node, g), f"{h.node} GPU {g.pci_address}: no failing clock event reason active"
                              + (f" (active: {', '.join(x.active_throttle)})" if x.active_throttle else "")))
    return out or [not_tested(GPU, node_subject(h.node), f"{h.node}: no GPU listed")]


def _meaning(code: int) -> str:
    return XID_TABLE.get(code, ("not in the XID catalogue of this version", False))[0]


def check_xids(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """No XID of ``health.fatal_xids`` in the kernel log since boot; other XIDs are listed in the pass message."""
    x, subject = h.xids, node_subject(h.node)
    if isinstance(x, SectionError):
        return _section_failed(Criterion.XID, h, x, "kernel log")
    if isinstance(x, KernelLogFailed):
        return [failed(Criterion.XID, subject, f"{h.node}: kernel log unreadable ({x.source} exit {x.exit_code}): {x.output}",
                       evidence=_ev(h, *x.output.splitlines()[:3]))]
    if x is None:
        return [failed(Criterion.XID, subject, f"{h.node}: neither dmesg nor journalctl found: the kernel log cannot be read")]
    fatal = [e for e in x if e.code in s.fatal_xids]
    if fatal:
        codes = sorted({e.code for e in fatal})
        desc = "; ".join(f"XID {c} ({_meaning(c)}) x{sum(e.code == c for e in fatal)} "
                         f"on {', '.join(sorted({e.pci for e in fatal if e.code == c}))}" for c in codes)
        return [failed(Criterion.XID, subject, f"{h.node}: fatal XID in the kernel log: {desc} (health.fatal_xids)",
                       evidence=_ev(h, *(e.line for e in fatal[:5])), values={"xids": codes})]
    other = sorted({e.code for e in x})
    seen = ", ".join(f"{c} ({_meaning(c)})" for c in other)
    note = f"; non-fatal XIDs seen: {seen}" if other else ""
    return [passed(Criterion.XID, subject, f"{h.node}: no fatal XID in the kernel log{note}", values={"xids": other})]


def pcie_subject(node: str, link: PcieLink) -> Subject:
    return Subject("pcie_link", f"{node}/{link.kind}-{link.name}", node=node)


def check_pcie_links(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """Every GPU and HCA link runs at its maximum speed and width, and at least ``health.min_pcie_gen`` x
    ``health.min_pcie_width``."""
    links = h.pcie
    if isinstance(links, SectionError):
        return _section_failed(Criterion.PCIE, h, links, "PCIe sysfs attributes")
    if not links:
        return [not_tested(Criterion.PCIE, node_subject(h.node), f"{h.node}: no NVIDIA GPU or HCA found under sysfs bus/pci")]
    out = []
    for ln in links:
        subj = pcie_subject(h.node, ln)
        dev = f"{h.node} {ln.kind.upper()} {ln.name}" + (f" ({ln.bdf})" if ln.bdf and ln.bdf != ln.name else "")
        raw = f"current_link_speed={ln.cur_speed!r} max_link_speed={ln.max_speed!r} current_link_width={ln.cur_width_text!r} max_link_width={ln.max_width_text!r}"
        values = {"gen": ln.gen, "gen_max": ln.gen_max, "width": ln.width, "width_max": ln.width_max,
                  "min_gen": s.min_pcie_gen, "min_width": s.min_pcie_width}
        if None in (ln.gen, ln.width, ln.gen_max, ln.width_max):
            out.append(failed(Criterion.PCIE, subj, f"{dev}: PCIe link attributes unreadable ({raw})", evidence=_ev(h, raw), values=values))
            continue
        assert ln.gen is not None and ln.width is not None and ln.gen_max is not None and ln.width_max is not None
        problems = []
        if ln.gen < ln.gen_max or ln.width < ln.width_max:
            problems.append(f"link at Gen{ln.gen} x{ln.width}, capable of Gen{ln.gen_max} x{ln.width_max}")
        if ln.gen < s.min_pcie_gen or ln.width < s.min_pcie_width:
            problems.append(f"Gen{ln.gen} x{ln.width} is below the required Gen{s.min_pcie_gen} x{s.min_pcie_width} (health.min_pcie_gen/min_pcie_width)")
        if problems:
            out.append(failed(Criterion.PCIE, subj, f"{dev}: {'; '.join(problems)}", evidence=_ev(h, raw), values=values))
        else:
            out.append(passed(Criterion.PCIE, subj, f"{dev}: Gen{ln.gen} x{ln.width} (its maximum)", values=values))
    return out


def check_pcie_acs(h: NodeHealth, s: HealthSettings) -> list[Finding]:
    """No PCI bridge redirects peer-to-peer traffic through the root complex (ACS ReqRedir/CmpltRedir... off)."""
    b, subject = h.lspci, node_subject(h.node)
    if isinstance(b, SectionError):
        return _section_failed(Criterion.PCIE, h, b, "lspci -vvv output")
    if b is None:
        return [not_tested(Criterion.PCIE, subject, "lspci is not installed on the node: ACS not checked")]
    if isinstance(b, str):
        return [failed(Criterion.PCIE, subject, f"{h.node}: lspci -vvv failed: {b}", evidence=_ev(h, *b.splitlines()[:3]))]
    if not s.acs_must_be_off:
        return [not_tested(Criterion.PCIE, subject, "health.acs_must_be_off is false")]
    if not b:
        return [not_tested(Criterion.PCIE, subject, f"{h.node}: no PCI bridge shows an ACS control (or lspci lacks the rights to read it)")]
    bad = [x for x in b if x.redirecting]
    if bad:
        return [failed(Criterion.PCIE, subject, f"{h.node}: ACS redirects peer-to-peer traffic on {len(bad)} bridge(s): "
                       + "; ".join(f"{x.bdf} ({', '.join(x.redirecting)})" for x in bad[:8]),
                       evidence=_ev(h, *(f"{x.bdf} ACSCtl: {x.acs_ctl}" for x in bad[:5])))]
    return [passed(Criterion.PCIE, subject, f"{h.node}: ACS redirection off on all {len(b)} bridges with ACS")]
