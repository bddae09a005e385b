"""The inventory's ``health:`` section: what a healthy node looks like (GPUs, PCIe, IB ports, counters, XIDs).

Validated once at load (:func:`read_health`, called by :func:`clusterproof.inventory.parse_inventory`); every
problem names its field (``health.min_pcie_width: must be >= 1, got 0``). The defaults suit an 8-GPU H100/H200
node with ConnectX-7 HCAs at 400 Gb/s, on InfiniBand or RoCE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clusterproof.fields import FieldReader, as_bool, as_int, as_str_list, one_of

#: IB error counters (``ports/N/counters/``) judged by default, with their absolute limit since the driver
#: loaded and the growth allowed during one collective sweep.
DEFAULT_COUNTER_LIMITS: Mapping[str, int] = {
    "symbol_error": 100,
    "link_downed": 10,
    "link_error_recovery": 10,
    "port_rcv_errors": 100,
    "port_rcv_remote_physical_errors": 100,
    "local_link_integrity_errors": 10,
    "excessive_buffer_overrun_errors": 10,
    "port_xmit_discards": 1000,
}
DEFAULT_COUNTER_GROWTH: Mapping[str, int] = {
    "symbol_error": 0,
    "link_downed": 0,
    "link_error_recovery": 0,
    "port_rcv_errors": 0,
    "port_rcv_remote_physical_errors": 0,
    "local_link_integrity_errors": 0,
    "excessive_buffer_overrun_errors": 0,
    "port_xmit_discards": 1000,
}
#: XIDs that make a node unfit (NVIDIA's XID catalogue marks them as needing a reset, a drain or an RMA).
DEFAULT_FATAL_XIDS: tuple[int, ...] = (48, 63, 64, 74, 79, 92, 94, 95, 119, 120)
#: Clock-event ("throttle") reasons that fail a GPU when active: the hardware and thermal slowdowns.
DEFAULT_FAILING_THROTTLE: tuple[str, ...] = ("hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown")
THROTTLE_REASONS = (
    "gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "hw_thermal_slowdown",
    "hw_power_brake_slowdown", "sync_boost", "sw_thermal_slowdown", "display_clocks_setting",
)
#: NCCL settings that change what a collective measures (algorithm, protocol, channels, transports).
DEFAULT_RESULT_CHANGING_NCCL: tuple[str, ...] = (
    "NCCL_ALGO", "NCCL_PROTO", "NCCL_NCHANNELS", "NCCL_MIN_NCHANNELS", "NCCL_MAX_NCHANNELS", "NCCL_MIN_CTAS",
    "NCCL_MAX_CTAS", "NCCL_BUFFSIZE", "NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "NCCL_IB_DISABLE", "NCCL_NET_GDR_LEVEL",
    "NCCL_NET_GDR_READ", "NCCL_P2P_LEVEL", "NCCL_CROSS_NIC", "NCCL_NVLS_ENABLE", "NCCL_COLLNET_ENABLE",
    "NCCL_IB_QPS_PER_CONNECTION", "NCCL_TREE_THRESHOLD", "NCCL_LL_THRESHOLD",
)


@dataclass(frozen=True)
class HealthSettings:
    """What a healthy node looks like. ``gpu_models`` empty accepts any model; ``link_layer`` ``any`` accepts
    InfiniBand and Ethernet (RoCE); ``ib_rate_gbps`` 0 skips the rate check; ``min_roce_mtu`` applies to the
    netdevs behind RoCE ports only."""

    gpus_per_node: int = 8
    gpu_models: tuple[str, ...] = ("NVIDIA H100 80GB HBM3", "NVIDIA H200")
    require_persistence_mode: bool = True
    require_ecc: bool = True
    max_uncorrectable_ecc: int = 0
    fail_on_pending_remap: bool = True
    failing_throttle_reasons: tuple[str, ...] = DEFAULT_FAILING_THROTTLE
    min_pcie_gen: int = 5
    min_pcie_width: int = 16
    ib_rate_gbps: int = 400
    link_layer: str = "any"
    min_roce_mtu: int = 4200
    require_peermem: bool = True
    counter_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTER_LIMITS))
    counter_growth: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTER_GROWTH))
    fatal_xids: tuple[int, ...] = DEFAULT_FATAL_XIDS
    result_changing_nccl: tuple[str, ...] = DEFAULT_RESULT_CHANGING_NCCL
    allowed_nccl: tuple[str, ...] = ()
    acs_must_be_off: bool = True


_KEYS = {
    "gpus_per_node", "gpu_models", "require_persistence_mode", "require_ecc", "max_uncorrectable_ecc",
    "fail_on_pending_remap", "failing_throttle_reasons", "min_pcie_gen", "min_pcie_width", "ib_rate_gbps",
    "link_layer", "min_roce_mtu", "require_peermem", "counter_limits", "counter_growth", "fatal_xids",
    "result_changing_nccl", "allowed_nccl", "acs_must_be_off",
}


def _counter_map(v: Any, p: str) -> dict[str, int]:
    if not isinstance(v, dict) or not v:
        raise ValueError(f"expected a mapping of counter name to a limit (an integer >= 0), got {v!r}")
    out: dict[str, int] = {}
    for k, n in v.items():
        if not isinstance(k, str) or not k.replace("_", "").isalnum():
            raise ValueError(f"{k!r} is not a counter file name (e.g. symbol_error)")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{k}: expected an integer >= 0, got {n!r}")
        out[k] = n
    return out


def _xids(v: Any, _p: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 999 for x in v):
        raise ValueError(f"expected a list of XID numbers (integers 1-999), got {v!r}")
    return tuple(v)


def read_health(r: FieldReader, raw: Any) -> HealthSettings:
    """Read the ``health:`` section (absent or null: every default). Problems go to ``r``."""
    p = "health"
    m = r.mapping(raw, p, _KEYS)
    d = HealthSettings()
    throttle = r.get(m, "failing_throttle_reasons", p, as_str_list, d.failing_throttle_reasons)
    for reason in throttle:
        if reason not in THROTTLE_REASONS:
            r.problem(f"{p}.failing_throttle_reasons", f"unknown reason {reason!r} (known: {', '.join(THROTTLE_REASONS)})")
    models = r.get(m, "gpu_models", p, as_str_list, d.gpu_models)
    allowed = r.get(m, "allowed_nccl", p, as_str_list, d.allowed_nccl)
    limits = dict(DEFAULT_COUNTER_LIMITS)
    limits.update(r.get(m, "counter_limits", p, _counter_map, {}))
    growth = dict(DEFAULT_COUNTER_GROWTH)
    growth.update(r.get(m, "counter_growth", p, _counter_map, {}))
    return HealthSettings(
        gpus_per_node=r.get(m, "gpus_per_node", p, as_int(0, 64), d.gpus_per_node),
        gpu_models=models,
        require_persistence_mode=r.get(m, "require_persistence_mode", p, as_bool, d.require_persistence_mode),
        require_ecc=r.get(m, "require_ecc", p, as_bool, d.require_ecc),
        max_uncorrectable_ecc=r.get(m, "max_uncorrectable_ecc", p, as_int(0), d.max_uncorrectable_ecc),
        fail_on_pending_remap=r.get(m, "fail_on_pending_remap", p, as_bool, d.fail_on_pending_remap),
        failing_throttle_reasons=tuple(throttle),
        min_pcie_gen=r.get(m, "min_pcie_gen", p, as_int(1, 7), d.min_pcie_gen),
        min_pcie_width=r.get(m, "min_pcie_width", p, as_int(1, 32), d.min_pcie_width),
        ib_rate_gbps=r.get(m, "ib_rate_gbps", p, as_int(0), d.ib_rate_gbps),
        link_layer=r.get(m, "link_layer", p, one_of("any", "InfiniBand", "Ethernet"), d.link_layer),
        min_roce_mtu=r.get(m, "min_roce_mtu", p, as_int(0, 65536), d.min_roce_mtu),
        require_peermem=r.get(m, "require_peermem", p, as_bool, d.require_peermem),
        counter_limits=limits,
        counter_growth=growth,
        fatal_xids=r.get(m, "fatal_xids", p, _xids, d.fatal_xids),
        result_changing_nccl=r.get(m, "result_changing_nccl", p, as_str_list, d.result_changing_nccl),
        allowed_nccl=allowed,
        acs_must_be_off=r.get(m, "acs_must_be_off", p, as_bool, d.acs_must_be_off),
    )
