"""The data path through temporary credentials: plan the transfers, run the client on the head node or on every
cluster node at once, turn what the clients measured into tidy rows, and judge them.

The client itself is ``datapath_client`` (standard library only, shipped to the nodes as one file). Rows
(``DATAPATH_COLUMNS``) carry throughput in GB/s (1e9 bytes/s) and objects/s over the wall time of the step
(first request sent to last answer received, across all clients), latency percentiles per request, and time to
first byte for GET. ``check_datapath`` returns the findings: every object read back must match what was written
(a digest per object), every request must succeed, and the thresholds of ``storage.performance`` must hold.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, Subject
from clusterproof.inventory_storage import PerformanceSettings
from clusterproof.redact import redact
from clusterproof.storage import datapath_client
from clusterproof.storage.model import TempCredential
from clusterproof.units import human_size as format_size

DATAPATH_COLUMNS: tuple[str, ...] = (
    "issuer", "clients", "n_clients", "op", "size_bytes", "size", "concurrency", "objects", "bytes", "wall_s",
    "gbs", "objects_per_s", "p50_ms", "p90_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms", "errors", "verified",
    "multipart", "threshold", "verdict", "source",
)
REMOTE_SCRIPT = Path(datapath_client.__file__)


@dataclass(frozen=True)
class Step:
    """One (size, concurrency) step and why it is skipped, if it is."""

    size: int
    concurrency: int
    skipped: str | None = None


def plan(perf: PerformanceSettings, n_clients: int, sizes: Sequence[int] | None = None) -> list[Step]:
    """Every (size, concurrency) step; those whose bytes in flight (size x concurrency x clients) exceed
    ``max_inflight_bytes`` are marked skipped with the reason."""
    out = []
    for size in sizes or perf.sizes:
        for conc in perf.concurrency:
            inflight = size * conc * n_clients
            why = None
            if perf.max_inflight_bytes and inflight > perf.max_inflight_bytes:
                why = (f"{format_size(size)} x {conc} thread(s) x {n_clients} client(s) = {format_size(inflight)} in "
                       f"flight, above storage.performance.max_inflight_bytes {format_size(perf.max_inflight_bytes)}")
            out.append(Step(size, conc, why))
    return out


def make_job(cred: TempCredential, endpoint: str, region: str, perf: PerformanceSettings, client: str,
             steps: Sequence[Step], list_keys: int = 0, start_at: float | None = None) -> dict[str, Any]:
    """The client's job (holds the credential: send it on stdin, never on a command line, never log it)."""
    runnable = [s for s in steps if s.skipped is None]
    sizes = sorted({s.size for s in runnable})
    conc = sorted({s.concurrency for s in runnable})
    return {
        "endpoint": endpoint, "region": region, "access_key": cred.access_key_id, "secret_key": cred.secret_access_key,
        "session_token": cred.session_token, "bucket": cred.bucket, "prefix": cred.prefix, "client": client,
        "steps": [[s.size, s.concurrency] for s in runnable], "sizes": sizes, "concurrency": conc,
        "objects": perf.objects, "part_size": perf.part_size, "list_keys": list_keys, "deadline_s": perf.deadline_s,
        "start_at": start_at,
    }


def run_local(job: Mapping[str, Any]) -> dict[str, Any]:
    """Run the client in this process (the head node)."""
    answer: dict[str, Any] = datapath_client.run_job(dict(job))
    return answer


def run_on_nodes(pool: Any, jobs: Mapping[str, Mapping[str, Any]], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Ship the client to every node of ``jobs`` and run them all at once (``pool`` is an ``SshPool``); the
    script is removed again on every path.

    Returns:
        node -> the client's answer; a node that could not run it gets an answer with one error saying why.
    """
    script = REMOTE_SCRIPT.read_bytes()
    remote = f"/tmp/cp-datapath-{secrets.token_hex(4)}.py"

    def one(node: str) -> dict[str, Any]:
        try:
            pool.put(node, script, remote)
            res = pool.run(node, ["python3", remote], timeout=timeout_s, stdin=json.dumps(dict(jobs[node])))
        except Exception as e:  # noqa: BLE001 - NodeUnreachable, CommandFailed: the node's answer says why
            return _failed_answer(node, f"could not run the client: {redact(str(e))}")
        finally:
            try:
                pool.run(node, ["rm", "-f", remote], timeout=30)
            except Exception:  # noqa: BLE001,S110 - an unreachable node keeps nothing we can remove anyway
                pass
        if res.timed_out:
            return _failed_answer(node, f"the client did not finish within {timeout_s:g} s")
        try:
            answer = json.loads(res.stdout)
        except ValueError:
            return _failed_answer(node, f"python3 exited {res.rc}: {redact(res.stderr.strip()[-500:])}")
        if not isinstance(answer, dict):
            return _failed_answer(node, "the client answered something that is not a JSON object")
        return answer

    results = pool.map_nodes(one, list(jobs))
    return {node: (r if isinstance(r, dict) else _failed_answer(node, redact(str(r)))) for node, r in results.items()}


def _failed_answer(node: str, why: str) -> dict[str, Any]:
    return {"client": node, "samples": [], "phases": [], "errors": [{"client": node, "op": "client", "size": 0,
                                                                       "concurrency": 0, "key": "", "error": why}]}


def start_time(delay_s: float = 2.0) -> float:
    """A wall-clock moment for all clients to begin together (nodes' clocks are checked by the node suite)."""
    return time.time() + delay_s


# --- rows -------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks; None for no values."""
    vals = sorted(v for v in values if v is not None and not math.isnan(v))
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000.0, 3)


def tidy_rows(answers: Iterable[Mapping[str, Any]], issuer: str, clients: str, source: str) -> list[dict[str, Any]]:
    """One row per (op, size, concurrency) over all the answers: aggregate bytes over the step's wall time (first
    start to last end across clients), latency percentiles over every request."""
    answers = list(answers)
    groups: dict[tuple[str, int, int], dict[str, Any]] = {}
    for a in answers:
        for ph in a.get("phases", []):
            g = groups.setdefault((ph["op"], int(ph["size"]), int(ph["concurrency"])),
                                  {"starts": [], "ends": [], "walls": [], "objects": 0, "bytes": 0, "samples": [],
                                   "errors": 0, "clients": 0})
            g["clients"] += 1
            g["objects"] += int(ph.get("objects", 0))
            g["bytes"] += int(ph.get("bytes", 0))
            g["walls"].append(float(ph.get("wall_s", 0)))
            if ph.get("t_start") is not None:
                g["starts"].append(float(ph["t_start"]))
                g["ends"].append(float(ph["t_end"]))
        for s in a.get("samples", []):
            key = (s["op"], int(s["size"]), int(s["concurrency"]))
            if key in groups:
                groups[key]["samples"].append(s)
        for e in a.get("errors", []):
            key = (e.get("op", ""), int(e.get("size", 0)), int(e.get("concurrency", 0)))
            if key in groups:
                groups[key]["errors"] += 1
    rows = []
    for (op, size, conc), g in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0] != "put")):
        wall = (max(g["ends"]) - min(g["starts"])) if g["starts"] else max(g["walls"] or [0.0])
        lat = [float(s["latency_s"]) for s in g["samples"]]
        ttfb = [float(s["ttfb_s"]) for s in g["samples"] if op == "get" and s.get("ttfb_s") is not None]
        rows.append({
            "issuer": issuer, "clients": clients, "n_clients": g["clients"], "op": op, "size_bytes": size,
            "size": format_size(size) if size else "-", "concurrency": conc, "objects": g["objects"],
            "bytes": g["bytes"], "wall_s": round(wall, 4),
            "gbs": round(g["bytes"] / wall / 1e9, 4) if wall > 0 and g["bytes"] else None,
            "objects_per_s": round(g["objects"] / wall, 2) if wall > 0 else None,
            "p50_ms": _ms(percentile(lat, 50)), "p90_ms": _ms(percentile(lat, 90)), "p99_ms": _ms(percentile(lat, 99)),
            "ttfb_p50_ms": _ms(percentile(ttfb, 50)), "ttfb_p99_ms": _ms(percentile(ttfb, 99)),
            "errors": g["errors"],
            "verified": sum(1 for s in g["samples"] if s.get("verified")) if op == "get" else None,
            "multipart": any(s.get("multipart") for s in g["samples"]),
            "threshold": None, "verdict": "info", "source": source,
        })
    return rows


# --- judging ----------------------------------------------------------------------------------------------------


def _subject(issuer: str, client: str) -> Subject:
    if client == "head":
        return Subject("issuer", f"{issuer}-head")
    return Subject("node", client, node=client)


def check_datapath(answers: Sequence[Mapping[str, Any]], rows: list[dict[str, Any]], steps: Sequence[Step],
                   perf: PerformanceSettings, issuer: str, source: str, evidence: str | None = None) -> list[Finding]:
    """Judge one data-path run (``rows`` from ``tidy_rows``; their ``threshold``/``verdict`` are filled in here).

    FAIL: an object read back differs from what was written, a request failed, fewer objects were verified than
    written, a LIST missed or invented keys, or a threshold is missed. NOT_TESTED: a skipped step. PASS: one per
    row that holds, with its numbers in ``values``.
    """
    ev = (fd.Evidence(evidence),) if evidence else ()
    out: list[Finding] = []
    for a in answers:
        client = str(a.get("client", "?"))
        errors = list(a.get("errors", []))
        for e in errors[:20]:
            what = "wrong data" if e.get("mismatch") else "request failed"
            out.append(fd.failed(Criterion.DATA_PATH, _subject(issuer, client),
                                 f"{issuer} from {client}: {what}: {e.get('op')} {format_size(int(e.get('size') or 0))} "
                                 f"x{e.get('concurrency')}: {redact(str(e.get('error')))}", evidence=ev))
        if len(errors) > 20:
            out.append(fd.failed(Criterion.DATA_PATH, _subject(issuer, client),
                                 f"{issuer} from {client}: {len(errors) - 20} more errors", evidence=ev))
    written = {(r["size_bytes"], r["concurrency"]): r["objects"] for r in rows if r["op"] == "put"}
    expected_per_step = {s: perf.objects * s.concurrency * max(1, len(answers)) for s in steps if s.skipped is None}
    for step, expected in expected_per_step.items():
        put = written.get((step.size, step.concurrency), 0)
        get_row = next((r for r in rows if r["op"] == "get" and (r["size_bytes"], r["concurrency"]) == (step.size, step.concurrency)), None)
        verified = (get_row or {}).get("verified") or 0
        if put < expected or verified < put:
            out.append(fd.failed(Criterion.DATA_PATH, Subject("issuer", issuer),
                                 f"{issuer} {format_size(step.size)} x{step.concurrency}: {put} of {expected} objects "
                                 f"written, {verified} read back and verified", evidence=ev))
    for step in steps:
        if step.skipped:
            out.append(fd.not_tested(Criterion.DATA_PATH, Subject("issuer", issuer),
                                     f"{issuer} {format_size(step.size)} x{step.concurrency}: {step.skipped}"))
    for r in rows:
        out.extend(_judge_row(r, perf, issuer, source, ev))
    return out


def _judge_row(r: dict[str, Any], perf: PerformanceSettings, issuer: str, source: str,
               ev: tuple[fd.Evidence, ...]) -> list[Finding]:
    label = f"{issuer} {r['clients']} {r['op'].upper()} {r['size']} x{r['concurrency']}"
    values = {k: r[k] for k in ("gbs", "objects_per_s", "p50_ms", "p90_ms", "p99_ms", "ttfb_p50_ms", "objects",
                                "verified", "n_clients") if r.get(k) is not None}
    values["source"] = source
    if r["op"] == "list":
        r["verdict"] = "pass" if not r["errors"] else "fail"
        msg = f"{label}: listed {r['objects']} keys in {r['wall_s'] * 1000:.0f} ms ({source})"
        return [fd.passed(Criterion.DATA_PATH, Subject("issuer", issuer), msg, values=values, evidence=ev)] \
            if not r["errors"] else []
    limit = perf.threshold(r["size_bytes"])
    problems = []
    if limit is not None:
        want = limit.min_put_gbs if r["op"] == "put" else limit.min_get_gbs
        parts = []
        if want is not None:
            parts.append(f">= {want:g} GB/s")
            values["min_gbs"] = want
            if (r["gbs"] or 0.0) < want:
                problems.append(f"{r['gbs'] or 0:.4f} GB/s < {want:g} GB/s")
        if limit.max_p99_ms is not None:
            parts.append(f"p99 <= {limit.max_p99_ms:g} ms")
            values["max_p99_ms"] = limit.max_p99_ms
            if r["p99_ms"] is not None and r["p99_ms"] > limit.max_p99_ms:
                problems.append(f"p99 {r['p99_ms']:.1f} ms > {limit.max_p99_ms:g} ms")
        r["threshold"] = ", ".join(parts) or None
    numbers = (f"{r['gbs'] or 0:.3f} GB/s, {r['objects_per_s'] or 0:.1f} objects/s, p50/p90/p99 "
               f"{r['p50_ms'] or 0:.1f}/{r['p90_ms'] or 0:.1f}/{r['p99_ms'] or 0:.1f} ms"
               + (f", TTFB p50 {r['ttfb_p50_ms']:.1f} ms" if r.get("ttfb_p50_ms") is not None else ""))
    if problems:
        r["verdict"] = "fail"
        return [fd.failed(Criterion.DATA_PATH, Subject("issuer", issuer),
                          f"{label}: {'; '.join(problems)} ({numbers}; {source})", values=values, evidence=ev)]
    r["verdict"] = "pass" if limit is not None and not r["errors"] else ("fail" if r["errors"] else "info")
    if r["errors"]:
        return []  # the errors are failures of their own above
    return [fd.passed(Criterion.DATA_PATH, Subject("issuer", issuer), f"{label}: {numbers} ({source})",
                      values=values, evidence=ev)]


def write_rows(rows: Sequence[Mapping[str, Any]], out_dir: Path, name: str) -> Path:
    """Save rows as ``<out_dir>/datapath/<name>.csv`` (the report's data-path table and plot read them)."""
    import csv

    folder = Path(out_dir) / "datapath"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(DATAPATH_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in DATAPATH_COLUMNS})
    return path
