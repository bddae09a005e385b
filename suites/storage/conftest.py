"""Storage-only hooks: every test here is marked ``s3``.

The access matrix's known RGW deviations live in ``clusterproof.storage.matrix.KNOWN_RGW_LIMITATIONS`` (data, with the
measured reason); the matrix test turns them into known-limitation findings (``clusterproof.storage.verdicts``), which
xfail the test and show in the report without failing it.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "suites/storage/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.s3)
