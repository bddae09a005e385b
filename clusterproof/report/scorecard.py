"""Map one run's results to the ClusterMAX v2 criteria that tests can evidence.

Areas and criteria (SemiAnalysis ClusterMAX 2.0: Networking, Storage, Reliability, Security):

- Networking: collectives meet their thresholds at every size; the 4-node NCCL test is within specification
  (ClusterMAX names it explicitly); one RoCE GID index everywhere; NCCL's own logs show the expected
  transport; no busbw regression against a baseline.
- Storage: the prefix-scoped credential access matrix; expired and revoked credentials are denied.
- Reliability (health checks): every node reachable and healthy; clocks within skew; ``#wrong == 0``.
- Security: no secret in the report (the output directory is re-read); credentials cannot escape their
  prefix; SSH host keys are checked strictly.

Each criterion is ``pass``, ``fail`` or ``not tested``, with one line of evidence that decided it, and
``details`` listing every failing case. The pytest outcome of every suite test (``checks.json``) is
evidence too: a failed ``nodes`` test fails Reliability with its test id.
"""

from __future__ import annotations

from collections.abc import Callable

from clusterproof.report.baseline import BaselineDiff
from clusterproof.report.criteria_health import (
    access_matrix,
    clocks,
    data_integrity,
    expiry,
    no_secrets,
    nodes_healthy,
    prefix_confinement,
    strict_host_keys,
)
from clusterproof.report.criteria_network import (
    baseline,
    collectives,
    four_node,
    gid_index,
    odd_transport_rows,
    transport,
)
from clusterproof.report.evidence import (
    AREAS,
    FAIL,
    NOT_TESTED,
    PASS,
    Criterion,
    check_line,
    row_text,
    storage_case_text,
)
from clusterproof.report.scrub import ScanResult
from clusterproof.report.tables import RunData

__all__ = [
    "AREAS",
    "FAIL",
    "NOT_TESTED",
    "PASS",
    "Criterion",
    "check_line",
    "odd_transport_rows",
    "row_text",
    "score",
    "storage_case_text",
]


def score(data: RunData, scan: ScanResult | None = None, diff: BaselineDiff | None = None) -> list[Criterion]:
    """Every criterion for one run, in area order (Networking, Storage, Reliability, Security)."""
    steps: list[Callable[[], Criterion]] = [
        lambda: collectives(data),
        lambda: four_node(data),
        lambda: gid_index(data),
        lambda: transport(data),
        lambda: baseline(diff),
        lambda: access_matrix(data),
        lambda: expiry(data),
        lambda: nodes_healthy(data),
        lambda: clocks(data),
        lambda: data_integrity(data),
        lambda: no_secrets(scan),
        lambda: prefix_confinement(data),
        lambda: strict_host_keys(data),
    ]
    return [step() for step in steps]

