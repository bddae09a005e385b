"""sysfs facts of the health sections: PCIe links (``h.pcie``), IB/RoCE ports and counters (``h.ib``), kernel
modules (``h.modules``) and the ACS control of PCI bridges from ``lspci -vvv`` (``h.lspci``).

Parsers are total: a value that cannot be read or is not a number is kept as ``None`` with the raw text (the
check says "unreadable" and quotes it), never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterproof.errors import ParseError
from clusterproof.nodes.health_gpu import split_rc

UNREADABLE = "?unreadable"
#: transfer rate (GT/s) -> PCIe generation
_GEN_OF_GTS = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6, 128.0: 7}
_SPEED_RE = re.compile(r"^(\d+(?:\.\d+)?) GT/s")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?) Gb/sec")


def pcie_gen(speed: str) -> int | None:
    """``"32.0 GT/s PCIe"`` -> 5; ``"8 GT/s"`` -> 3; anything else (``Unknown``, empty) -> None."""
    m = _SPEED_RE.match(speed.strip())
    return _GEN_OF_GTS.get(float(m.group(1))) if m else None


def _width(text: str) -> int | None:
    t = text.strip().removeprefix("x")
    return int(t) if t.isdigit() else None


@dataclass(frozen=True)
class PcieLink:
    kind: str  # gpu | hca
    name: str  # the PCI address for a GPU, the HCA name (mlx5_0) for an HCA
    bdf: str
    cur_speed: str
    max_speed: str
    cur_width_text: str
    max_width_text: str

    @property
    def gen(self) -> int | None:
        return pcie_gen(self.cur_speed)

    @property
    def gen_max(self) -> int | None:
        return pcie_gen(self.max_speed)

    @property
    def width(self) -> int | None:
        return _width(self.cur_width_text)

    @property
    def width_max(self) -> int | None:
        return _width(self.max_width_text)


def parse_pcie(lines: list[str]) -> list[PcieLink]:
    """Raises ParseError on a line that is not 7 tab-separated fields."""
    out = []
    for ln in lines:
        if not ln.strip():
            continue
        parts = ln.split("\t")
        if len(parts) != 7 or parts[0] not in ("gpu", "hca"):
            raise ParseError(f"pcie: expected 'kind name bdf cur_speed max_speed cur_width max_width' (tabs), got {ln!r}")
        out.append(PcieLink(*parts))
    return out


@dataclass
class IbPort:
    hca: str
    port: str
    attrs: dict[str, str] = field(default_factory=dict)
    counters: dict[str, str] = field(default_factory=dict)  # counters/ and hw_counters/ (as "hw_counters/x")
    netdev: str | None = None
    netdev_mtu_text: str | None = None

    @property
    def name(self) -> str:
        return f"{self.hca}:{self.port}"

    @property
    def state(self) -> str:
        """``4: ACTIVE`` -> ``ACTIVE``."""
        return self.attrs.get("state", UNREADABLE).split(":", 1)[-1].strip()

    @property
    def phys_state(self) -> str:
        return self.attrs.get("phys_state", UNREADABLE).split(":", 1)[-1].strip()

    @property
    def link_layer(self) -> str:
        return self.attrs.get("link_layer", UNREADABLE).strip()

    @property
    def rate_gbps(self) -> float | None:
        m = _RATE_RE.match(self.attrs.get("rate", "").strip())
        return float(m.group(1)) if m else None

    def counter(self, name: str) -> int | None:
        """The counter's value; None when missing, unreadable or not a number (``N/A (no PMA)``)."""
        text = self.counters.get(name)
        return int(text) if text is not None and text.strip().isdigit() else None

    @property
    def netdev_mtu(self) -> int | None:
        t = self.netdev_mtu_text
        return int(t) if t is not None and t.strip().isdigit() else None


def parse_ib(lines: list[str]) -> list[IbPort]:
    """Raises ParseError on a line that is none of attr/counters/hw_counters/netdev."""
    ports: dict[tuple[str, str], IbPort] = {}
    for ln in lines:
        if not ln.strip():
            continue
        parts = ln.split(" ", 4)
        if len(parts) < 4 or parts[0] not in ("attr", "counters", "hw_counters", "netdev"):
            raise ParseError(f"ib: expected 'attr|counters|hw_counters|netdev HCA PORT NAME VALUE', got {ln!r}")
        kind, hca, port, name = parts[:4]
        value = parts[4] if len(parts) == 5 else ""
        p = ports.setdefault((hca, port), IbPort(hca, port))
        if kind == "attr":
            p.attrs[name] = value
        elif kind == "counters":
            p.counters[name] = value
        elif kind == "hw_counters":
            p.counters[f"hw_counters/{name}"] = value
        else:
            p.netdev, p.netdev_mtu_text = name, value
    return list(ports.values())


def parse_modules(lines: list[str]) -> set[str]:
    return {ln.strip() for ln in lines if ln.strip()}


@dataclass(frozen=True)
class AcsBridge:
    bdf: str
    title: str
    acs_ctl: str

    @property
    def redirecting(self) -> list[str]:
        """The ACS controls that route peer-to-peer traffic up to the root complex (``ReqRedir+`` ...)."""
        return [f for f in ("ReqRedir", "CmpltRedir", "UpstreamFwd", "EgressCtrl") if f"{f}+" in self.acs_ctl]


_DEVICE_RE = re.compile(r"^(?P<bdf>[0-9a-fA-F]{0,4}:?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]) (?P<title>.*)$")


def parse_lspci(lines: list[str]) -> list[AcsBridge] | str | None:
    """``lspci -vvv`` -> the bridges that have an ACSCtl line; a string (lspci's words) when it failed; None when
    lspci is absent."""
    body, code = split_rc(lines, "lspci -vvv")
    if code is None:
        return None
    if code != 0:
        return "\n".join(body).strip() or f"lspci exited {code}"
    out: list[AcsBridge] = []
    bdf, title = "?", ""
    for ln in body:
        m = _DEVICE_RE.match(ln)
        if m:
            bdf, title = m.group("bdf"), m.group("title")
            continue
        s = ln.strip()
        if s.startswith("ACSCtl:"):
            out.append(AcsBridge(bdf, title, " ".join(s.split()[1:])))
    return out
