"""Storage-only hooks: every test here is marked ``s3``; the access matrix's known RGW deviations become strict xfails.

The deviations live in ``clusterproof.storage.matrix.KNOWN_RGW_LIMITATIONS`` (data, with the measured reason). They are
applied at collection time because they depend on two fixture parameters (issuer kind and permission).
"""

from __future__ import annotations

import pytest

from clusterproof.storage.matrix import KNOWN_RGW_LIMITATIONS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "suites/storage/" not in item.nodeid.replace("\\", "/"):
            continue
        item.add_marker(pytest.mark.s3)
        params = getattr(item, "callspec", None)
        if params is None or "case" not in params.params:
            continue
        key = (str(params.params.get("s3_issuer")), str(params.params.get("permission")), params.params["case"].id)
        reason = KNOWN_RGW_LIMITATIONS.get(key)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=f"known RGW limitation: {reason}", strict=True))
