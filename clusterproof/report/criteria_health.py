"""Scorecard criteria for Storage (access matrix, expiry), Reliability (nodes, clocks, #wrong) and Security
(no secret in the report, prefix confinement, strict host keys)."""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

from clusterproof.report import fmt
from clusterproof.report.evidence import (
    CLOCK_RE,
    EXPIRY_RE,
    FAIL,
    HOST_KEY_RE,
    NOT_TESTED,
    PASS,
    Criterion,
    ambiguous_sets,
    check_line,
    checks_of,
    first_line,
    is_failed,
    passed_note,
    skip_reason,
    some,
    storage_case_text,
)
from clusterproof.report.scrub import ScanResult
from clusterproof.report.tables import RunData

# ---------------------------------------------------------------------------------------------- storage

#: Storage row verdict for a case that deviates exactly as a documented RGW limitation says (strict xfail).
KNOWN_LIMITATION = "known-limitation"


def expiry_mask(storage: pd.DataFrame) -> pd.Series:
    text = storage["operation"].astype(str) + " " + storage["where"].astype(str) + " " + storage["test_id"].astype(str)
    return text.str.contains(EXPIRY_RE)


def access_matrix(data: RunData) -> Criterion:
    """Storage: every case of the prefix-scoped credential matrix is allowed or denied as expected."""
    name = "Prefix-scoped access matrix as expected"
    cid = "storage.access_matrix"
    st = data.storage
    rows = st[~expiry_mask(st)] if not st.empty else st
    checks = checks_of(data, "storage", exclude=[EXPIRY_RE])
    failed = [c for c in checks if is_failed(c)]
    bad = rows[rows["verdict"] == FAIL]
    # Documented RGW limitations (strict xfails in the suite) are shown, never hidden, but do not fail the run.
    known = rows[rows["verdict"] == KNOWN_LIMITATION]
    known_note = f"; {len(known)} known RGW limitation(s): {some([storage_case_text(r) for r in known.itertuples()], 1)}" if not known.empty else ""
    details = [storage_case_text(r) for r in bad.itertuples()] + [check_line(c) for c in failed]
    if details:
        head = f"{len(bad)} of {len(rows)} cases wrong; " if not bad.empty else ""
        return Criterion(cid, "Storage", name, FAIL, head + some(details, 1) + known_note, details)
    if not rows.empty:
        issuers = sorted(rows["issuer"].dropna().astype(str).unique())
        perms = sorted(rows["permission"].dropna().astype(str).unique())
        ok = len(rows) - len(known)
        return Criterion(cid, "Storage", name, PASS,
                         f"{ok} of {len(rows)} cases as expected (issuers: {', '.join(issuers)}; "
                         f"permissions: {', '.join(perms)}){known_note}")
    if any(c.get("outcome") == "passed" for c in checks):
        return Criterion(cid, "Storage", name, PASS, passed_note(checks))
    return Criterion(cid, "Storage", name, NOT_TESTED, skip_reason(checks) or "no storage case ran")


def expiry(data: RunData) -> Criterion:
    """Storage: expired, reaped and revoked credentials are denied."""
    name = "Expired and revoked credentials are denied"
    cid = "storage.expiry"
    st = data.storage
    rows = st[expiry_mask(st)] if not st.empty else st
    checks = checks_of(data, "storage", match=EXPIRY_RE)
    failed = [c for c in checks if is_failed(c)]
    bad = rows[rows["verdict"] == FAIL]
    details = [storage_case_text(r) for r in bad.itertuples()] + [check_line(c) for c in failed]
    if details:
        return Criterion(cid, "Storage", name, FAIL, some(details), details)
    if not rows.empty or any(c.get("outcome") == "passed" for c in checks):
        parts = []
        if not rows.empty:
            parts.append(f"{len(rows)} expiry case{'s' if len(rows) != 1 else ''} as expected")
        if checks:
            parts.append(f"{passed_note(checks)} ({first_line(checks[0]['test_id'])}{', …' if len(checks) > 1 else ''})")
        return Criterion(cid, "Storage", name, PASS, "; ".join(parts))
    return Criterion(cid, "Storage", name, NOT_TESTED, skip_reason(checks) or "no expiry or revocation test ran")


# ------------------------------------------------------------------------------------------ reliability


def nodes_healthy(data: RunData) -> Criterion:
    """Reliability: every node answered and its node checks passed (clock and host-key checks excluded)."""
    name = "All nodes reachable and healthy"
    cid = "reliability.nodes"
    checks = checks_of(data, "nodes", exclude=[CLOCK_RE, HOST_KEY_RE])
    failed = [c for c in checks if is_failed(c)]
    have = set(data.nodes["node"].dropna().astype(str))
    expected = list(data.meta.nodes) or sorted(have)
    missing = [n for n in expected if n not in have] if not data.nodes.empty or checks else []
    details = [check_line(c) for c in failed] + [f"{n}: no facts collected" for n in missing]
    if details:
        return Criterion(cid, "Reliability", name, FAIL, some(details), details)
    if not expected and not checks:
        return Criterion(cid, "Reliability", name, NOT_TESTED, "no node was checked")
    if not have and not any(c.get("outcome") == "passed" for c in checks):
        return Criterion(cid, "Reliability", name, NOT_TESTED, skip_reason(checks) or "no node facts collected")
    listed = ", ".join(expected[:6]) + (", …" if len(expected) > 6 else "")
    note = f"; {passed_note(checks)}" if checks else ""
    return Criterion(cid, "Reliability", name, PASS,
                     f"{len(expected)} of {len(expected)} nodes answered ({listed}){note}")


def clocks(data: RunData) -> Criterion:
    """Reliability: node clocks agree within ``extra["max_clock_skew_s"]`` (default 1 s)."""
    name = "Node clocks within skew"
    cid = "reliability.clocks"
    limit = float(data.meta.extra.get("max_clock_skew_s", 1.0))
    checks = checks_of(data, "nodes", match=CLOCK_RE)
    failed = [c for c in checks if is_failed(c)]
    offsets = pd.to_numeric(data.nodes["clock_offset_s"], errors="coerce")
    known = data.nodes.assign(offset=offsets).dropna(subset=["offset"])
    details = [check_line(c) for c in failed]
    spread_text = None
    if not known.empty:
        spread = float(known["offset"].max() - known["offset"].min())
        far = known.loc[cast(Any, (known["offset"] - known["offset"].median()).abs().idxmax())]
        spread_text = f"clock spread {spread:.3f} s across {len(known)} nodes (limit {limit:g} s)"
        if spread > limit:
            details.append(f"{spread_text}; furthest: {far['node']} at {float(far['offset']):+.3f} s")
    if details:
        return Criterion(cid, "Reliability", name, FAIL, some(details), details)
    if spread_text:
        return Criterion(cid, "Reliability", name, PASS, spread_text)
    if any(c.get("outcome") == "passed" for c in checks):
        return Criterion(cid, "Reliability", name, PASS, passed_note(checks))
    return Criterion(cid, "Reliability", name, NOT_TESTED, skip_reason(checks) or "no clock offsets measured")


def data_integrity(data: RunData) -> Criterion:
    """Reliability: collectives computed the right result (``#wrong == 0`` on every validated row)."""
    name = "Collective results correct (#wrong == 0)"
    cid = "reliability.data_integrity"
    net = data.network
    if net.empty:
        return Criterion(cid, "Reliability", name, NOT_TESTED, "no collective was run")
    validated = net[net["wrong"].notna()]
    if validated.empty:
        return Criterion(cid, "Reliability", name, NOT_TESTED,
                         f"validation was off (#wrong is N/A in all {len(net)} rows)")
    bad = validated[validated["wrong"] > 0]
    if not bad.empty:
        amb = ambiguous_sets(net)
        details = [
            f"{r.collective} across {fmt.as_int(r.n_nodes)} nodes"
            + (f" ({r.node_set})" if (str(r.collective), fmt.as_int(r.n_nodes)) in amb else "")
            + f" at {fmt.size(r.size_bytes)} {r.placement}: {fmt.as_int(r.wrong)} wrong elements"
            for r in bad.itertuples()
        ]
        return Criterion(cid, "Reliability", name, FAIL, f"{len(bad)} of {len(validated)} rows wrong; {some(details, 1)}",
                         details)
    return Criterion(cid, "Reliability", name, PASS, f"0 wrong elements in {len(validated)} validated rows")


# --------------------------------------------------------------------------------------------- security


def no_secrets(scan: ScanResult | None) -> Criterion:
    """Security: the report directory holds no registered secret, secret-looking assignment or env dump."""
    name = "No secret in reports"
    cid = "security.no_secrets"
    if scan is None:
        return Criterion(cid, "Security", name, NOT_TESTED, "the report directory was not scanned")
    if scan.leaks:
        lines = [str(leak) for leak in scan.leaks]
        return Criterion(cid, "Security", name, FAIL, f"{len(lines)} place(s): {some(lines)}", lines)
    kib = scan.bytes / 1024
    return Criterion(cid, "Security", name, PASS,
                     f"scanned {scan.files} files ({kib:,.0f} KiB) under the report: no registered secret, "
                     "secret-looking assignment or environment dump")


def prefix_confinement(data: RunData) -> Criterion:
    """Security: every attempt outside the granted prefix (expected deny) was denied."""
    name = "Credentials cannot escape their prefix"
    cid = "security.prefix_confinement"
    st = data.storage
    if st.empty:
        return Criterion(cid, "Security", name, NOT_TESTED, "no storage case ran")
    outside = st[(st["expected"] == "deny") & (st["where"].astype(str) != "inside") & ~expiry_mask(st)]
    if outside.empty:
        return Criterion(cid, "Security", name, NOT_TESTED, "no case tried a key outside its prefix")
    escaped = outside[outside["observed"].astype(str) == "allow"]
    if not escaped.empty:
        details = [storage_case_text(r) for r in escaped.itertuples()]
        return Criterion(cid, "Security", name, FAIL,
                         f"{len(escaped)} of {len(outside)} out-of-prefix attempts allowed; {some(details, 1)}", details)
    places = sorted(outside["where"].astype(str).unique())
    return Criterion(cid, "Security", name, PASS,
                     f"{len(outside)} of {len(outside)} out-of-prefix attempts denied ({', '.join(places)})")


def strict_host_keys(data: RunData) -> Criterion:
    """Security: SSH refuses unknown host keys (a host-key test, or the inventory setting)."""
    name = "SSH host keys strictly checked"
    cid = "security.strict_host_keys"
    checks = checks_of(data, match=HOST_KEY_RE)
    failed = [c for c in checks if is_failed(c)]
    if failed:
        lines = [check_line(c) for c in failed]
        return Criterion(cid, "Security", name, FAIL, some(lines), lines)
    if any(c.get("outcome") == "passed" for c in checks):
        first = next(c for c in checks if c.get("outcome") == "passed")
        return Criterion(cid, "Security", name, PASS, f"{passed_note(checks)}: {first['test_id']}")
    setting = data.meta.extra.get("strict_host_keys")
    if setting is False:
        text = "ssh.strict_host_keys is false in the inventory: unknown host keys would be accepted"
        return Criterion(cid, "Security", name, FAIL, text, [text])
    if setting is True:
        return Criterion(cid, "Security", name, NOT_TESTED,
                         "strict_host_keys is on in the inventory, but no test tried an unknown host key")
    return Criterion(cid, "Security", name, NOT_TESTED, skip_reason(checks) or "no host-key check ran")


