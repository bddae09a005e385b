"""NCCL configuration that changes results: ``/etc/nccl.conf``, ``~/.nccl.conf``, NCCL_* in a node login's
environment and in the launch environment (``nccl_tests.env``), and NCCL_IB_HCA values whose prefix matches
more HCAs than meant (``mlx5_1`` also matches ``mlx5_10``..``mlx5_17`` unless written ``=mlx5_1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class NcclSetting:
    name: str
    value: str
    source: str  # /etc/nccl.conf, ~/.nccl.conf, node environment, inventory nccl_tests.env


@dataclass(frozen=True)
class NcclConfig:
    settings: tuple[NcclSetting, ...]
    unreadable: tuple[str, ...]  # config files that exist but could not be read


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def parse_nccl_section(lines: list[str]) -> NcclConfig:
    """The ``h.nccl`` section. Comment and blank lines of the config files are skipped (NCCL does too)."""
    settings: list[NcclSetting] = []
    unreadable: list[str] = []
    source = "?"
    for ln in lines:
        kind, _, rest = ln.partition(" ")
        if kind == "file":
            source = rest.strip()
        elif kind == "unreadable":
            unreadable.append(rest.strip())
        elif kind == "line":
            text = rest.strip()
            if not text or text.startswith("#") or "=" not in text:
                continue
            name, _, value = text.partition("=")
            settings.append(NcclSetting(name.strip(), _unquote(value), source))
        elif kind == "env":
            name, _, value = rest.partition("=")
            settings.append(NcclSetting(name.strip(), _unquote(value), "node environment"))
    return NcclConfig(tuple(settings), tuple(unreadable))


def launch_settings(env: Mapping[str, str], where: str = "inventory nccl_tests.env") -> list[NcclSetting]:
    return [NcclSetting(k, v, where) for k, v in env.items() if k.startswith("NCCL_")]


def forced_in_launch(env: Mapping[str, str], result_changing: Sequence[str]) -> str | None:
    """The result-changing NCCL settings of a launch environment as one cell (``NCCL_ALGO=Ring; NCCL_PROTO=LL``),
    kept beside the busbw they produced; None when there is none."""
    forced = [f"{k}={v}" for k, v in sorted(env.items()) if k in result_changing]
    return "; ".join(forced) or None


def hca_prefix_overmatch(value: str, hcas: list[str]) -> dict[str, list[str]]:
    """For an ``NCCL_IB_HCA`` value, each entry that (as NCCL's prefix match reads it) selects more than the one
    HCA of the same name present on the node: entry -> every HCA it matches. Exact-match (``=``) lists never
    over-match. A port suffix (``mlx5_1:1``) is ignored for the match."""
    v = value.strip()
    exclude = v.startswith("^")
    v = v.lstrip("^")
    if v.startswith("="):
        return {}
    out: dict[str, list[str]] = {}
    for entry in (e.strip() for e in v.split(",")):
        if not entry:
            continue
        dev = entry.split(":", 1)[0]
        matched = sorted(h for h in hcas if h.startswith(dev))
        if len(matched) > 1 and dev in hcas:
            out[("^" if exclude else "") + entry] = matched
    return out
