"""A tiny suite for tests/test_one_verdict.py (run in a nested pytest, copied next to a conftest that loads the real
fixture plugins). What each test does is chosen by $CP_PROBE, so one file serves every scenario; nothing here needs
root, a sandbox or an RGW.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clusterproof import findings as fd
from clusterproof.findings import Criterion, node_subject
from clusterproof.redact import REDACTOR

SCENARIO = os.environ.get("CP_PROBE", "healthy")
MINTED = "wJalrXUtnFEMIK7MDENGbPxRfiCYprobeSECRET1"  # an S3 secret key shape, minted by "an issuer" in a worker


@pytest.fixture
def broken_connection() -> None:
    if SCENARIO == "fixture-error":
        raise ConnectionRefusedError("node02: unreachable: connection refused")


def test_probe_node_check(node, findings, broken_connection: None) -> None:  # type: ignore[no-untyped-def]
    node = node.name  # one test per inventory node, as the real suites
    if SCENARIO == "failing-finding" and node == "node02":
        findings.check(fd.failed(Criterion.GPU_HEALTH, node_subject(node), f"{node}: 7 of 8 GPUs"))
    findings.check(fd.passed(Criterion.GPU_HEALTH, node_subject(node), f"{node}: 8 of 8 GPUs"))
    if SCENARIO == "assert-after-pass" and node == "node01":
        raise AssertionError("node01: the suite found something after its check passed")


@pytest.mark.criterion(Criterion.NODE_FACTS)
def test_probe_marked_without_findings(report_dir: Path) -> None:
    if SCENARIO == "secret":
        REDACTOR.add(MINTED)  # what an issuer does with every key it mints (here: in an xdist worker)
        (report_dir / "logs").mkdir(exist_ok=True)
        # a writer that forgot the scrubber: the raw secret lands in the report
        (report_dir / "logs" / "leaky-tool.log").write_text(f"upload done with secret {MINTED}\n")


@pytest.mark.criterion(Criterion.ACCESS_MATRIX)
@pytest.mark.xfail(reason="known RGW limitation: probe", strict=True)
def test_probe_known_limitation() -> None:
    raise AssertionError("deviates as documented")
