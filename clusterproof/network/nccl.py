"""nccl-tests output into pandas: text logs of every format era, and ``-J`` JSON files.

``parse(text)`` reads what an ``*_perf`` binary printed (through ``mpirun --tag-output``, ``srun -l`` or
neither, with NCCL's own INFO/WARN lines mixed in, possibly cut off mid-run) and returns an ``NcclRun``.
``parse_json(path)`` reads a ``-J`` file (nccl-tests >= 2.17.3) into the same ``NcclRun``.

This module is the public face; the work is split so each part stays small and imports stay one-way:
``clusterproof.network.nccl_model`` holds ``NcclRun``, the frames and the busbw maths, ``clusterproof.network.nccl_text``
reads text logs and ``clusterproof.network.nccl_json`` reads ``-J`` reports. Both readers import only the model,
never this module, so there is no import cycle.
"""

from __future__ import annotations

from clusterproof.network.nccl_json import parse_json
from clusterproof.network.nccl_model import (
    DEVICE_COLUMNS,
    PLACEMENTS,
    RESULT_COLUMNS,
    NcclRun,
    busbw_factor,
    collective_name,
    decode_nccl_version_code,
    devices_frame,
    empty_devices,
    empty_results,
    printed_size,
    results_frame,
)
from clusterproof.network.nccl_text import parse, parse_file

__all__ = [
    "DEVICE_COLUMNS",
    "PLACEMENTS",
    "RESULT_COLUMNS",
    "NcclRun",
    "busbw_factor",
    "collective_name",
    "decode_nccl_version_code",
    "devices_frame",
    "empty_devices",
    "empty_results",
    "parse",
    "parse_file",
    "parse_json",
    "printed_size",
    "results_frame",
]
