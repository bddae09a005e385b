"""nccl-tests ``-J`` JSON reports (nccl-tests >= 2.17.3, JSON_FILE_VERSION 2 and 3) into an NcclRun.

The report's ``env`` list holds the whole process environment of rank 0, secrets included. It is never
copied anywhere: only the keys this module needs are read from the document.

A run that crashes leaves a truncated file (rank 0 writes through a buffered FILE*). Such a file is
salvaged: the config and every whole result object before the cut are kept, and ``complete`` is False.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from clusterproof.errors import ParseError
from clusterproof.network.nccl_model import (
    PLACEMENTS,
    RESULT_COLUMNS,
    NcclRun,
    collective_name,
    decode_nccl_version_code,
    devices_frame,
    results_frame,
)

# config key in the JSON -> the name the text header prints, so NcclRun.header reads the same either way.
_CONFIG_TO_HEADER = {
    "nthreads": "nThread",
    "ngpus": "nGpus",
    "minimum_bytes": "minBytes",
    "maximum_bytes": "maxBytes",
    "warmup_iters": "warmup iters",
    "iterations": "iters",
    "aggregated_iterations": "agg iters",
    "validation": "validation",
    "graph": "graph",
    "unalign": "unalign",
    "per_iter_skip": "per-iteration skip",
}
# nccl-tests writes booleans as the strings "true"/"false" (jsonBool -> jsonStr).
_CONFIG_FLAGS = {
    "blocking_collectives": "blocking",
    "per_iter_timing": "per-iteration",
    "parallel_init": "parallel init",
}
_PLACEMENT_KEYS = (("out_of_place", PLACEMENTS[0]), ("in_place", PLACEMENTS[1]))


def parse_json(path: str | Path) -> NcclRun:
    """Read an nccl-tests ``-J`` report into an NcclRun, dropping its ``env`` list.

    ``nranks`` is processes x ``nthreads`` x ``ngpus``: nccl-tests lists one device entry per process
    (it parses only the first ``Rank`` line of each process), so ``devices`` has one row per process.
    The JSON carries no nccl-tests version, so ``version`` is None.

    Raises:
        ParseError: the file cannot be read, is not JSON (and nothing can be salvaged), or a field has
            the wrong type; the message names the file and the field or position.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ParseError(f"{p}: cannot read nccl-tests JSON report: {e.strerror}") from None
    errors: list[str] = []
    truncated = False
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        truncated = True
        doc = _salvage(text)
        if doc is None:
            raise ParseError(
                f"{p}: not an nccl-tests JSON report: {e.msg} at line {e.lineno} column {e.colno}"
            ) from None
        errors.append(
            f"{p}: JSON cut off at line {e.lineno} column {e.colno} (the run died?): "
            f"kept {len(doc.get('results', []))} whole result rows"
        )
    if not isinstance(doc, dict) or not ("results" in doc or "config" in doc):
        raise ParseError(f"{p}: not an nccl-tests JSON report (no 'config' or 'results' object)")
    return _run_from(doc, p, errors, truncated)


def _run_from(doc: dict[str, Any], p: Path, errors: list[str], truncated: bool) -> NcclRun:
    # Read only what is needed; never iterate the whole document (its "env" holds secrets).
    config = _field(doc, "config", dict, p, default={})
    devices_json = _field(config, "devices", list, p, default=[], where="config.")
    rows = []
    for i, d in enumerate(devices_json):
        where = f"config.devices[{i}]"
        if not isinstance(d, dict):
            raise ParseError(f"{p}: {where}: expected an object, got {type(d).__name__}")
        rows.append(
            (
                _need_int(d.get("rank"), p, f"{where}.rank"),
                _int(d.get("group"), p, f"{where}.group"),
                _need_int(d.get("pid"), p, f"{where}.pid"),
                str(d.get("hostname", "")),
                _need_int(d.get("device"), p, f"{where}.device"),
                str(d.get("device_hex", "")),
                str(d.get("device_info", "")),
            )
        )
    devices = devices_frame(rows)
    header = _header(config, p)
    per_process = int(header.get("nThread", 1)) * int(header.get("nGpus", 1))
    cols, cputime = _results(_field(doc, "results", list, p, default=[]), p)
    if cputime:
        header["cputime"] = 1

    args = doc.get("args")
    binary = args[0] if isinstance(args, list) and args and isinstance(args[0], str) else None
    code = doc.get("nccl_version")
    bounds = _field(doc, "out_of_bounds", dict, p, default={})
    average = _field(doc, "average_bus_bandwidth", dict, p, default={})
    out_of_bounds = _int(bounds.get("count"), p, "out_of_bounds.count")
    avg = _float(average.get("bandwidth"), p, "average_bus_bandwidth.bandwidth") if average else None
    if bounds.get("okay") in (False, "false"):
        errors.append(f"{p}: nccl-tests reports {out_of_bounds} results out of bounds (wrong)")
    if average.get("okay") in (False, "false"):
        errors.append(f"{p}: average bus bandwidth {avg} GB/s is below 0.9 x NCCL_TESTS_MIN_BW")
    for message in _field(doc, "errors", list, p, default=[]):
        errors.append(f"{p}: nccl-tests error: {message}")
    complete = not truncated and "average_bus_bandwidth" in doc
    if not truncated and not complete:
        errors.append(f"{p}: no 'average_bus_bandwidth': the run did not finish")
    return NcclRun(
        results=results_frame(cols),
        collective=collective_name(binary) if binary else None,
        version=None,
        nccl_version=decode_nccl_version_code(code) if isinstance(code, int) and code > 0 else None,
        nranks=len(rows) * per_process,
        hosts=list(dict.fromkeys(devices["host"])),
        devices=devices,
        avg_busbw_gbs=avg,
        out_of_bounds=out_of_bounds,
        errors=errors,
        complete=complete,
        header=header,
        standin=False,
    )


def _header(config: dict[str, Any], p: Path) -> dict[str, int | str]:
    header: dict[str, int | str] = {}
    for key, name in _CONFIG_TO_HEADER.items():
        if key in config:
            value = _int(config[key], p, f"config.{key}")
            if value is not None:
                header[name] = value
    for key, kind in (("step_factor", "factor"), ("step_bytes", "bytes")):
        if key in config:
            step = _int(config[key], p, f"config.{key}")
            if step is not None:
                header["step"], header["step type"] = step, kind
    for key, name in _CONFIG_FLAGS.items():
        if key in config:
            header[name] = 1 if config[key] in (True, "true", 1) else 0
    return header


def _results(results: list[Any], p: Path) -> tuple[dict[str, list[object]], bool]:
    cols: dict[str, list[object]] = {name: [] for name in RESULT_COLUMNS}
    cputime = False
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, dict):
            raise ParseError(f"{p}: {where}: expected an object, got {type(r).__name__}")
        size = _need_int(r.get("size"), p, f"{where}.size")
        count = _need_int(r.get("count"), p, f"{where}.count")
        root = _int(r.get("root", -1), p, f"{where}.root")  # written as a string: "    -1"
        for key, placement in _PLACEMENT_KEYS:
            body = r.get(key)
            if body is None:
                continue  # trace replay writes "out_of_place": null
            if not isinstance(body, dict):
                raise ParseError(f"{p}: {where}.{key}: expected an object, got {type(body).__name__}")
            cputime = cputime or "cpu_time" in body
            time_key = "cpu_time" if "cpu_time" in body else "time"
            wrong = body.get("nwrong")
            for name, value in (
                ("size_bytes", size),
                ("count", count),
                ("dtype", str(r.get("type", ""))),
                ("redop", str(r.get("redop", "none"))),
                ("root", -1 if root is None else root),
                ("placement", placement),
                ("time_us", _float(body.get(time_key), p, f"{where}.{key}.{time_key}")),
                ("algbw_gbs", _float(body.get("alg_bw"), p, f"{where}.{key}.alg_bw")),
                ("busbw_gbs", _float(body.get("bus_bw"), p, f"{where}.{key}.bus_bw")),
                ("wrong", None if wrong is None else _int(wrong, p, f"{where}.{key}.nwrong")),
            ):
                cols[name].append(value)
    return cols, cputime


def _field(obj: dict[str, Any], key: str, kind: type, p: Path, default: Any, where: str = "") -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ParseError(f"{p}: {where}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _int(value: Any, p: Path, where: str) -> int | None:
    """Integers come as numbers, as strings ("    -1") or as doubles (nwrong is written with %lf)."""
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number != number or number != int(number):
        raise ParseError(f"{p}: {where}: expected an integer, got {value!r}")
    return int(number)


def _need_int(value: Any, p: Path, where: str) -> int:
    number = _int(value, p, where)
    if number is None:
        raise ParseError(f"{p}: {where}: missing (expected an integer)")
    return number


def _float(value: Any, p: Path, where: str) -> float:
    """Doubles come as numbers, or as the string "nan" (nccl-tests writes NaN that way)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise ParseError(f"{p}: {where}: expected a number, got {value!r}") from None


def _salvage(text: str) -> dict[str, Any] | None:
    """Return what a truncated report still holds (nccl_version, config, whole result objects), or None.

    Keys are found as ``,"key":`` so a look-alike inside a JSON string (where quotes are escaped) does
    not match; the ``env`` list is skipped, never decoded.
    """
    decoder = json.JSONDecoder()
    doc: dict[str, Any] = {}
    for key in ("args", "nccl_version", "config"):
        m = re.search(rf',\s*"{key}"\s*:\s*', text)
        if m:
            try:
                doc[key] = decoder.raw_decode(text, m.end())[0]
            except json.JSONDecodeError:
                pass
    m = re.search(r',\s*"results"\s*:\s*\[', text)
    if m:
        results = []
        pos = m.end()
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text) or text[pos] == "]":
                break
            try:
                obj, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
            results.append(obj)
        doc["results"] = results
    return doc if ("config" in doc or "results" in doc) else None
