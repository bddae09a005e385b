"""Markers by what a test really needs, so ``make unit`` (``-m "not needs_root and not needs_sandbox and not
needs_rgw"``) runs only the pure tests: a test that uses a fixture starting a sandbox or an RGW is marked here from
that fixture, whatever its module remembered to declare."""

from __future__ import annotations

import pytest

#: fixture name -> the markers a test using it needs
NEEDS: dict[str, tuple[str, ...]] = {
    "rgw": ("needs_rgw", "needs_root"),
    "rgw_admin": ("needs_rgw", "needs_root"),
    "rgw_bucket": ("needs_rgw", "needs_root"),
    "sandbox": ("needs_sandbox", "needs_root"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for fixture, markers in NEEDS.items():
            if fixture in names:
                for marker in markers:
                    if item.get_closest_marker(marker) is None:
                        item.add_marker(getattr(pytest.mark, marker))
