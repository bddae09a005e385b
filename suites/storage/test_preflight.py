"""Before anything else in the storage area: the RGW answers, the admin keys are in the environment, the admin API
takes them. When this fails, every other storage test is skipped with its line (fixtures/storage_gate.py)."""

from __future__ import annotations

import pytest

from clusterproof.inventory import StorageSettings
from clusterproof.storage.preflight import preflight
from fixtures.findings import FindingRecorder


def test_storage_preflight(storage: StorageSettings, findings: FindingRecorder) -> None:
    findings.check(preflight(storage))


pytestmark = pytest.mark.s3
