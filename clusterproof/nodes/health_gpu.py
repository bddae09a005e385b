"""GPU facts from ``nvidia-smi``: the ``--query-gpu`` CSV and the ``-q -x`` XML (parsed with a real XML parser).

Both parsers are total: they return what the output says or raise :class:`ParseError` naming what is wrong; a
field nvidia-smi reports as ``N/A`` (or ``[N/A]``, ``[Not Supported]``) is ``None``, never a made-up number.
``nvidia-smi`` failing (no driver, a GPU that fell off the bus) is :class:`SmiFailed` with its own words.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from clusterproof.errors import ParseError
from clusterproof.nodes.health_command import GPU_QUERY


@dataclass(frozen=True)
class SmiFailed:
    """nvidia-smi ran and failed: its exit code and what it printed."""

    exit_code: int
    output: str


@dataclass
class GpuInfo:
    """One GPU as nvidia-smi reports it. Counts are None when nvidia-smi says N/A (not supported)."""

    index: int | None
    name: str
    bus_id: str
    driver: str | None = None
    persistence: str | None = None
    ecc_mode: str | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    retired_pending: bool | None = None
    active_throttle: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pci_address(self) -> str:
        """``00000000:18:00.0`` -> ``0000:18:00.0`` (the sysfs name)."""
        dom, _, rest = self.bus_id.partition(":")
        return f"{dom[-4:]}:{rest}".lower() if rest else self.bus_id.lower()


@dataclass
class SmiXml:
    driver: str | None
    cuda: str | None
    attached: int | None
    gpus: list[GpuInfo]


_NA = {"n/a", "[n/a]", "[not supported]", "not supported", "[unknown error]", ""}


def _none_if_na(text: str | None) -> str | None:
    if text is None:
        return None
    t = text.strip()
    return None if t.lower() in _NA else t


def _int_or_none(text: str | None, what: str) -> int | None:
    t = _none_if_na(text)
    if t is None:
        return None
    t = t.removesuffix("x").strip()
    try:
        return int(t)
    except ValueError:
        raise ParseError(f"{what}: expected an integer or N/A, got {text!r}") from None


def split_rc(lines: list[str], what: str) -> tuple[list[str], int | None]:
    """Split the trailing ``rc N`` line the facts command adds. Returns (body, code); code None = ``absent``.

    Raises:
        ParseError: no ``rc`` line (the output was cut off).
    """
    body = list(lines)
    while body and not body[-1].strip():
        body.pop()
    if body == ["absent"]:
        return [], None
    if not body or not body[-1].startswith("rc "):
        raise ParseError(f"{what}: output ends without its exit code (cut off?); last line {body[-1:]!r}")
    code = body.pop()[3:].strip()
    if not code.isdigit():
        raise ParseError(f"{what}: bad exit-code line 'rc {code}'")
    return body, int(code)


def parse_query_csv(lines: list[str]) -> list[GpuInfo] | SmiFailed | None:
    """The ``h.gpu_csv`` section -> one GpuInfo per GPU; SmiFailed when nvidia-smi failed; None when absent.

    Raises:
        ParseError: a row does not have the queried fields.
    """
    body, code = split_rc(lines, "nvidia-smi --query-gpu")
    if code is None:
        return None
    if code != 0:
        return SmiFailed(code, "\n".join(body).strip())
    out: list[GpuInfo] = []
    for row in csv.reader(io.StringIO("\n".join(ln for ln in body if ln.strip())), skipinitialspace=True):
        if len(row) != len(GPU_QUERY):
            raise ParseError(f"nvidia-smi --query-gpu: expected {len(GPU_QUERY)} fields ({','.join(GPU_QUERY)}), got {row!r}")
        v = dict(zip(GPU_QUERY, (c.strip() for c in row), strict=True))
        out.append(GpuInfo(
            index=_int_or_none(v["index"], "index"), name=v["name"], bus_id=v["pci.bus_id"],
            driver=_none_if_na(v["driver_version"]), persistence=_none_if_na(v["persistence_mode"]),
            ecc_mode=_none_if_na(v["ecc.mode.current"]),
            ecc_uncorrected_volatile=_int_or_none(v["ecc.errors.uncorrected.volatile.total"], "ecc volatile"),
            ecc_uncorrected_aggregate=_int_or_none(v["ecc.errors.uncorrected.aggregate.total"], "ecc aggregate"),
            pcie_gen=_int_or_none(v["pcie.link.gen.current"], "pcie gen"), pcie_gen_max=_int_or_none(v["pcie.link.gen.max"], "pcie gen max"),
            pcie_width=_int_or_none(v["pcie.link.width.current"], "pcie width"),
            pcie_width_max=_int_or_none(v["pcie.link.width.max"], "pcie width max"),
        ))
    return out


def _text(el: ET.Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path)
    return None if found is None else _none_if_na(found.text)


def _yes(text: str | None) -> bool | None:
    if text is None:
        return None
    return text.strip().lower() in ("yes", "true", "active", "1")


def _sum_ints(el: ET.Element | None, names: tuple[str, ...], what: str) -> int | None:
    """Sum the child counters (``dram_uncorrectable`` + ``sram_uncorrectable`` ...); None when all are N/A."""
    if el is None:
        return None
    values = [_int_or_none(_text(el, n), what) for n in names]
    known = [v for v in values if v is not None]
    return sum(known) if known else None


_UNCORRECTABLE = ("dram_uncorrectable", "sram_uncorrectable", "sram_uncorrectable_parity", "sram_uncorrectable_secded",
                  "double_bit/total")  # drivers >= 525 (v13 splits SRAM into parity/SECDED), and older


def _gpu_from_xml(g: ET.Element) -> GpuInfo:
    bus = g.get("id") or _text(g, "pci/pci_bus_id") or "?"
    ecc = g.find("ecc_errors")
    remap = g.find("remapped_rows")
    throttle_el = g.find("clocks_event_reasons")
    if throttle_el is None:
        throttle_el = g.find("clocks_throttle_reasons")  # drivers before 530
    active: list[str] = []
    if throttle_el is not None:
        for child in throttle_el:
            if _none_if_na(child.text) == "Active":
                active.append(child.tag.replace("clocks_event_reason_", "").replace("clocks_throttle_reason_", ""))
    return GpuInfo(
        index=_int_or_none(_text(g, "minor_number"), "minor_number"),
        name=_text(g, "product_name") or "?",
        bus_id=bus,
        persistence=_text(g, "persistence_mode"),
        ecc_mode=_text(g, "ecc_mode/current_ecc"),
        ecc_uncorrected_volatile=_sum_ints(ecc.find("volatile") if ecc is not None else None, _UNCORRECTABLE, "ecc volatile"),
        ecc_uncorrected_aggregate=_sum_ints(ecc.find("aggregate") if ecc is not None else None, _UNCORRECTABLE, "ecc aggregate"),
        pcie_gen=_int_or_none(_text(g, "pci/pci_gpu_link_info/pcie_gen/current_link_gen"), "pcie gen"),
        pcie_gen_max=_int_or_none(_text(g, "pci/pci_gpu_link_info/pcie_gen/max_link_gen"), "pcie gen max"),
        pcie_width=_int_or_none(_text(g, "pci/pci_gpu_link_info/link_widths/current_link_width"), "pcie width"),
        pcie_width_max=_int_or_none(_text(g, "pci/pci_gpu_link_info/link_widths/max_link_width"), "pcie width max"),
        remap_pending=_yes(_text(remap, "remapped_row_pending")) if remap is not None and len(remap) else None,
        remap_failure=_yes(_text(remap, "remapped_row_failure")) if remap is not None and len(remap) else None,
        retired_pending=_yes(_text(g, "retired_pages/pending_retirement")),
        active_throttle=tuple(active),
    )


def parse_smi_xml(lines: list[str]) -> SmiXml | SmiFailed | None:
    """The ``h.gpu_xml`` section -> SmiXml; SmiFailed when nvidia-smi failed; None when absent.

    Entity declarations are refused (nvidia-smi never writes them; they are how XML parsers get abused).

    Raises:
        ParseError: not XML, or not an ``nvidia_smi_log``.
    """
    body, code = split_rc(lines, "nvidia-smi -q -x")
    if code is None:
        return None
    text = "\n".join(body).strip()
    if code != 0:
        return SmiFailed(code, text)
    if "<!ENTITY" in text:
        raise ParseError("nvidia-smi -q -x: output declares XML entities; refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ParseError(f"nvidia-smi -q -x: not well-formed XML ({e}); first line {body[:1]!r}") from None
    if root.tag != "nvidia_smi_log":
        raise ParseError(f"nvidia-smi -q -x: root element is <{root.tag}>, not <nvidia_smi_log>")
    attached = _int_or_none(_text(root, "attached_gpus"), "attached_gpus")
    return SmiXml(driver=_text(root, "driver_version"), cuda=_text(root, "cuda_version"), attached=attached,
                  gpus=[_gpu_from_xml(g) for g in root.findall("gpu")])
