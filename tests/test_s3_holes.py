"""A deliberately weakened grant makes the access matrix fail with messages that name the hole; the real grant
passes it. Runs the whole matrix (read-write) against a real RGW."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import RgwAdminSession, RgwUserIssuer
from clusterproof.storage.holes import WeakenedRgwUserIssuer, find_holes
from clusterproof.storage.matrix import Layout
from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401


@pytest.mark.parametrize("weakening, must_name", [
    ("prefix-without-slash", ["sibling prefix data2/ readable: grant leaks beyond data/",
                              "sibling prefix data2/ writable: grant leaks beyond data/",
                              "prefix 'data' without slash listable"]),
    ("list-without-prefix-condition", ["whole bucket listable without a prefix: ListBucket lacks the s3:prefix condition",
                                       "sibling prefix data2/ listable: grant leaks beyond data/"]),
])
def test_s3_weakened_grant_fails_with_the_hole_named(rgw: RgwInfo, rgw_admin: RgwAdminSession, rgw_bucket: Callable[[], str], weakening: str, must_name: list[str]) -> None:  # noqa: F811
    issuer = WeakenedRgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, weakening=weakening)
    found = find_holes(issuer, rgw.endpoint, rgw_admin.s3, Layout(rgw_bucket(), rgw_bucket()), "holes")
    text = "\n".join(found)
    for hole in must_name:
        assert hole in text, f"{weakening}: no violation names {hole!r}; found:\n{text}"
    if weakening == "list-without-prefix-condition":  # objects stay scoped: only listings leak
        assert all("listable" in v for v in found), text


def test_s3_real_grant_has_no_holes(rgw: RgwInfo, rgw_admin: RgwAdminSession, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    issuer = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)
    assert find_holes(issuer, rgw.endpoint, rgw_admin.s3, Layout(rgw_bucket(), rgw_bucket()), "tight") == []
