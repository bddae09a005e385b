"""Why a collective produced no table: the cause found in its log, for the first lines of a failure message.

Pure. :func:`failure_cause` looks, in this order of trust, for nccl-tests' own failure line (``Test NCCL failure
common.cu:1285 '...'``, ``Test CUDA failure ...``, ``Test timeout``), then NCCL's first ``NCCL WARN``, then the
launcher's own error (Open MPI's "There are not enough slots", "mpirun noticed/detected", ``srun: error``,
``slurmstepd: error``), and returns those lines. :func:`failure_message` puts them before the log's tail, so
the cause is the first thing a person reads and not lost under mpirun's boilerplate.
"""

from __future__ import annotations

import re

from clusterproof.network.nccl_model import strip_launcher_tags

_TESTS_FAILURE = re.compile(
    r"Test (?:NCCL|CUDA) failure \S+:\d+|: Test failure \S+:\d+|Test timeout \(\d+s\)|Bitwise mismatch|^# error:"
)
_WARN = re.compile(r"\bNCCL WARN\b")
_LAUNCHER = re.compile(
    r"There are not enough slots available|mpirun noticed that|mpirun detected that|mpirun was unable to"
    r"|ORTE was unable|PRTE has lost communication|MPI_ABORT was invoked|An ORTE daemon has unexpectedly failed"
    r"|srun: error:|slurmstepd: error:|\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED|command not found"
    r"|No such file or directory|error while loading shared libraries|Permission denied"
)
_MAX_LINES = 3


def failure_cause(text: str) -> list[str]:
    """Return up to three log lines that say why the run failed (launcher tags removed), most telling first:
    nccl-tests' failure lines, else the first NCCL WARN lines, else the launcher's error. Empty when the log
    names no cause."""
    lines = [strip_launcher_tags(raw.rstrip("\r")).strip() for raw in text.split("\n")]
    for pattern in (_TESTS_FAILURE, _WARN, _LAUNCHER):
        hits = list(dict.fromkeys(line for line in lines if line and pattern.search(line)))
        if hits:
            return hits[:_MAX_LINES]
    return []


def failure_message(text: str, tail_lines: int = 15) -> str:
    """``cause: <lines>`` (or ``cause: none found in the log``), then ``--- last lines ---`` and the tail."""
    cause = failure_cause(text)
    head = "cause: " + ("\n       ".join(cause) if cause else "none found in the log (see the last lines)")
    tail = "\n".join(text.strip().splitlines()[-tail_lines:])
    return f"{head}\n--- last lines ---\n{tail}"
