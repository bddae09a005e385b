"""Node-health parsers on real captured outputs (tests/data/health/, sources in SOURCES.md), and property tests
that cut, tear and mangle them: a parser returns a value or raises ParseError, never anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterproof.errors import ParseError
from clusterproof.nodes.health import SectionError, parse_health
from clusterproof.nodes.health_gpu import SmiFailed, SmiXml, parse_query_csv, parse_smi_xml
from clusterproof.nodes.health_nccl import hca_prefix_overmatch, parse_nccl_section
from clusterproof.nodes.health_sysfs import parse_ib, parse_lspci, parse_pcie, pcie_gen
from clusterproof.nodes.health_xid import KernelLogFailed, parse_kmsg_section, parse_xid_lines

DATA = Path(__file__).parent / "data" / "health"
XMLS = sorted(DATA.glob("nvidia-smi-q-x-*.xml"))


def _xml_section(name: str) -> list[str]:
    return [*(DATA / name).read_text().splitlines(), "rc 0"]


@pytest.mark.parametrize("path", XMLS, ids=[p.stem for p in XMLS])
def test_real_xml_parses(path: Path) -> None:
    got = parse_smi_xml([*path.read_text().splitlines(), "rc 0"])
    assert isinstance(got, SmiXml) and got.driver and 1 <= len(got.gpus) <= (got.attached or 1)
    for g in got.gpus:
        assert g.name.startswith(("NVIDIA", "Tesla")) and g.bus_id.count(":") == 2


def test_a100_xml_fields() -> None:
    got = parse_smi_xml(_xml_section("nvidia-smi-q-x-a100-sxm4-v12.xml"))
    assert isinstance(got, SmiXml)
    assert (got.driver, got.cuda, got.attached) == ("535.54.03", "12.2", 4)
    g = got.gpus[0]
    assert g.name == "NVIDIA A100-SXM4-80GB" and g.pci_address == "0000:01:00.0"
    assert (g.persistence, g.ecc_mode, g.ecc_uncorrected_volatile, g.ecc_uncorrected_aggregate) == ("Disabled", "Enabled", 0, 0)
    assert (g.pcie_gen, g.pcie_gen_max, g.pcie_width, g.pcie_width_max) == (4, 4, 16, 16)
    assert g.remap_pending is None and g.active_throttle == ()


def test_h100_xml_fields() -> None:
    """An 8-GPU HGX H100 (SXM5) node, driver 570.86.15, DTD v12, GPUs passed through to a VM (NVIDIA/aicr's capture)."""
    got = parse_smi_xml(_xml_section("nvidia-smi-q-x-h100-sxm5-80gb.xml"))
    assert isinstance(got, SmiXml)
    assert (got.driver, got.cuda, got.attached, len(got.gpus)) == ("570.86.15", "12.8", 8, 8)
    assert [g.index for g in got.gpus] == list(range(8))
    assert [g.pci_address for g in got.gpus] == ["0000:04:00.0", "0000:05:00.0", "0000:0b:00.0", "0000:0c:00.0",
                                                 "0000:84:00.0", "0000:85:00.0", "0000:8b:00.0", "0000:8c:00.0"]
    assert got.gpus[2].bus_id == "00000000:0B:00.0"
    for g in got.gpus:
        assert g.name == "NVIDIA H100 80GB HBM3" and g.driver is None  # the XML has the driver once, at the top
        assert (g.persistence, g.ecc_mode, g.ecc_uncorrected_volatile, g.ecc_uncorrected_aggregate) == ("Disabled", "Enabled", 0, 0)
        # max_link_gen is what the host allows (Gen4 here); the H100's own Gen5 is max_device_link_gen, not read
        assert (g.pcie_gen, g.pcie_gen_max, g.pcie_width, g.pcie_width_max) == (4, 4, 16, 16)
        assert (g.remap_pending, g.remap_failure) == (False, False)
        assert g.retired_pending is None  # Hopper reports page retirement N/A (it remaps rows instead)
        assert g.active_throttle == ("gpu_idle",)


def test_a10g_remapped_rows_and_v13_split_sram() -> None:
    a10g = parse_smi_xml(_xml_section("nvidia-smi-q-x-a10g.xml"))
    assert isinstance(a10g, SmiXml) and a10g.gpus[0].remap_pending is False and a10g.gpus[0].remap_failure is False
    rtx = parse_smi_xml(_xml_section("nvidia-smi-q-x-rtx-3080-v13.xml"))
    assert isinstance(rtx, SmiXml) and rtx.driver == "595.58.03"
    assert rtx.gpus[0].ecc_uncorrected_volatile is None  # every counter N/A: no number invented


def test_driver_failure_is_smi_failed_with_its_words() -> None:
    words = (DATA / "nvidia-smi-driver-failed.txt").read_text().strip()
    for parse in (parse_smi_xml, parse_query_csv):
        got = parse([words, "rc 9"])
        assert isinstance(got, SmiFailed) and got.exit_code == 9 and "couldn't communicate with the NVIDIA driver" in got.output


def test_absent_and_cut_off() -> None:
    assert parse_smi_xml(["absent"]) is None and parse_query_csv(["absent"]) is None
    with pytest.raises(ParseError, match="exit code"):
        parse_smi_xml(["<nvidia_smi_log>"])
    with pytest.raises(ParseError, match="not well-formed"):
        parse_smi_xml(["<nvidia_smi_log><gpu>", "rc 0"])
    with pytest.raises(ParseError, match="entities"):
        parse_smi_xml(['<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><nvidia_smi_log>&e;</nvidia_smi_log>', "rc 0"])


def test_query_csv() -> None:
    rows = ["0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 550.54.15, Enabled, Enabled, 0, 3, 5, 5, 16, 16",
            "1, NVIDIA H100 80GB HBM3, 00000000:2A:00.0, 550.54.15, Disabled, Enabled, [N/A], [N/A], 1, 5, 16, 16", "rc 0"]
    got = parse_query_csv(rows)
    assert isinstance(got, list) and len(got) == 2
    assert got[0].ecc_uncorrected_aggregate == 3 and got[1].ecc_uncorrected_volatile is None and got[1].pci_address == "0000:2a:00.0"
    with pytest.raises(ParseError, match="expected 12 fields"):
        parse_query_csv(["0, NVIDIA H100", "rc 0"])


def test_xid_lines_real() -> None:
    events = parse_xid_lines((DATA / "xid-lines.txt").read_text().splitlines())
    assert [e.code for e in events] == [79, 79, 62, 14, 79, 79]
    assert events[0].pci == "0000:44:00" and events[0].meaning == "GPU has fallen off the bus" and events[0].catalogue_fatal


def test_kmsg_section() -> None:
    lines = (DATA / "xid-lines.txt").read_text().splitlines()
    got = parse_kmsg_section([*lines, "rc 0", "src dmesg"])
    assert isinstance(got, list) and len(got) == 6
    failed = parse_kmsg_section(["dmesg: read kernel buffer failed: Operation not permitted", "rc 1", "src dmesg"])
    assert isinstance(failed, KernelLogFailed) and "Operation not permitted" in failed.output
    with pytest.raises(ParseError):
        parse_kmsg_section(["rc 0"])


def _counter_dump_lines(path: Path, hca: str = "mlx5_1", port: str = "1") -> list[str]:
    """The real `=== ./name ===` dump as the facts command prints counters."""
    text = path.read_text().splitlines()
    out = []
    for i, ln in enumerate(text):
        if ln.startswith("=== ./"):
            out.append(f"counters {hca} {port} {ln[6:-4]} {text[i + 1]}")
    return out


def test_ib_counters_real_dump() -> None:
    lines = ["attr mlx5_1 1 state 4: ACTIVE", "attr mlx5_1 1 phys_state 5: LinkUp", "attr mlx5_1 1 rate 400 Gb/sec (4X NDR)",
             "attr mlx5_1 1 link_layer InfiniBand", *_counter_dump_lines(DATA / "ib-counters-mlx5_1-port1.txt")]
    (p,) = parse_ib(lines)
    assert p.name == "mlx5_1:1" and p.state == "ACTIVE" and p.phys_state == "LinkUp" and p.rate_gbps == 400.0
    assert p.counter("link_downed") == 255 and p.counter("port_xmit_discards") == 65535 and len(p.counters) == 21


def test_ib_no_pma_is_unreadable_not_zero() -> None:
    lines = []
    for ln in (DATA / "ib-counters-no-pma.txt").read_text().splitlines():
        if ln.startswith("/sys"):
            path, _, value = ln.rpartition(":")
            lines.append(f"counters i40iw0 1 {path.rsplit('/', 1)[1]} {value}")
    (p,) = parse_ib(lines)
    assert p.counters["link_downed"] == "N/A (no PMA)" and p.counter("link_downed") is None


def test_pcie_and_lspci() -> None:
    assert [pcie_gen(s) for s in ("32.0 GT/s PCIe", "8 GT/s", "2.5 GT/s PCIe", "Unknown", "")] == [5, 3, 1, None, None]
    (link,) = parse_pcie(["gpu\t0000:18:00.0\t0000:18:00.0\t16.0 GT/s PCIe\t32.0 GT/s PCIe\t8\t16"])
    assert (link.gen, link.gen_max, link.width, link.width_max) == (4, 5, 8, 16)
    bridges = parse_lspci([*(DATA / "lspci-vvv-plx-acs.txt").read_text().splitlines(), "rc 0"])
    assert isinstance(bridges, list) and bridges[0].redirecting == ["ReqRedir", "CmpltRedir", "UpstreamFwd"]
    assert parse_lspci(["absent"]) is None


def test_nccl_section_and_prefix() -> None:
    cfg = parse_nccl_section(["file /etc/nccl.conf", "line # tuned by the vendor", "line NCCL_ALGO=Ring", "line",
                              "env NCCL_IB_HCA='mlx5_1'", "unreadable /root/.nccl.conf"])
    assert [(s.name, s.value, s.source) for s in cfg.settings] == [("NCCL_ALGO", "Ring", "/etc/nccl.conf"),
                                                                    ("NCCL_IB_HCA", "mlx5_1", "node environment")]
    assert cfg.unreadable == ("/root/.nccl.conf",)
    hcas = [f"mlx5_{i}" for i in range(12)]
    assert hca_prefix_overmatch("mlx5_1", hcas) == {"mlx5_1": ["mlx5_1", "mlx5_10", "mlx5_11"]}
    assert hca_prefix_overmatch("=mlx5_1", hcas) == {} and hca_prefix_overmatch("mlx5_2:1,mlx5_3", hcas) == {}


def test_one_bad_section_fails_only_itself() -> None:
    text = "\n".join(["::clusterproof-facts h.gpu_xml", "<nvidia_smi_log><gpu>", "rc 0",
                      "::clusterproof-facts h.ib", "attr mlx5_0 1 state 4: ACTIVE", "::clusterproof-facts h.pcie", "garbage"])
    h = parse_health("node07", text)
    assert isinstance(h.gpu_xml, SectionError) and "not well-formed" in h.gpu_xml.message
    assert isinstance(h.pcie, SectionError) and isinstance(h.ib, list) and h.ib[0].state == "ACTIVE"
    assert isinstance(h.gpu_csv, SectionError) and "no 'h.gpu_csv' section" in h.gpu_csv.message


_REAL = [(DATA / n).read_text() for n in ("nvidia-smi-q-x-a100-sxm4-v12.xml", "nvidia-smi-q-x-h100-sxm5-80gb.xml")]
_TORN = st.sampled_from(_REAL).flatmap(lambda r: st.tuples(st.just(r), st.integers(0, len(r)), st.integers(0, len(r))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(torn=_TORN, junk=st.text(max_size=40))
def test_xml_parser_total_on_torn_input(torn: tuple[str, int, int], junk: str) -> None:
    real, cut, where = torn
    text = real[:cut]
    text = text[:where] + junk + text[where:]
    try:
        got = parse_smi_xml([*text.splitlines(), "rc 0"])
    except ParseError:
        return
    assert isinstance(got, SmiXml)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(max_size=60), max_size=12))
def test_line_parsers_total(lines: list[str]) -> None:
    for parse in (parse_ib, parse_pcie, parse_kmsg_section, parse_query_csv, parse_lspci):
        try:
            parse(lines)  # type: ignore[operator]
        except ParseError:
            pass
    parse_nccl_section(lines)
    parse_health("n", "\n".join(["::clusterproof-facts h.ib", *lines, "::clusterproof-facts h.kmsg", *lines]))
