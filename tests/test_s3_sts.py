"""StsIssuer against a real RGW (STS minimum session 5 s): scoped session credentials, a role per credential,
immediate revoke, reap of expired roles, the TTL limits, and the session-policy DeleteObjects deviation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from clusterproof.redact import MASK, REDACTOR
from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import (
    RgwAdminSession,
    StsIssuer,
    decode_role_name,
    policy,
    s3_client,
)
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.matrix import ALLOW, DENY, attempt
from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401


@pytest.fixture
def sts(rgw: RgwInfo) -> Iterator[StsIssuer]:  # noqa: F811
    """Yields: a StsIssuer with its own assumer user. Scope: function. Cleans up: its roles and the assumer."""
    issuer = StsIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, assumer_uid="cpt-test-assumer")
    yield issuer
    issuer.purge("sts")
    issuer.remove_assumer()


def test_s3_sts_credential_scoped_and_revocable(sts: StsIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    bucket = rgw_bucket()
    cred = sts.issue("sts-acme", bucket, "data", 900, "object-read-only")
    name = decode_role_name(cred.id)
    assert cred.session_token and name is not None and name.customer == "sts-acme"
    assert abs((cred.expires_at - datetime.now(UTC)).total_seconds() - 900) < 30
    assert "SessionToken" not in repr(cred) and cred.session_token not in repr(cred)
    assert cred.access_key_id not in repr(cred) and cred.access_key_id[:4] + "***" in repr(cred)
    for value in (cred.access_key_id, cred.secret_access_key, cred.session_token):
        assert REDACTOR.redact(f"<{value}>") == f"<{MASK}>", "an STS key part is not registered for redaction"
    rgw_admin.s3.put_object(Bucket=bucket, Key="data/seed", Body=b"s")
    rgw_admin.s3.put_object(Bucket=bucket, Key="data2/seed", Body=b"s")
    c = s3_client(rgw.endpoint, **cred.client_kwargs())
    assert attempt(lambda: c.get_object(Bucket=bucket, Key="data/seed")).observed == ALLOW
    assert attempt(lambda: c.get_object(Bucket=bucket, Key="data2/seed")).observed == DENY
    assert attempt(lambda: c.put_object(Bucket=bucket, Key="data/x", Body=b"x")).observed == DENY  # read-only
    no_token = s3_client(rgw.endpoint, cred.access_key_id, cred.secret_access_key)
    assert attempt(lambda: no_token.get_object(Bucket=bucket, Key="data/seed")).observed == DENY
    sts.revoke(cred)
    assert attempt(lambda: c.get_object(Bucket=bucket, Key="data/seed")).observed == DENY
    assert temp_ids(rgw_admin, "sts-acme") == []


def test_s3_sts_reap_removes_expired_roles_only(sts: StsIssuer, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    bucket = rgw_bucket()
    short = sts.issue("sts-reap", bucket, "a/", 900)
    long = sts.issue("sts-reap", bucket, "b/", 3600)
    other = sts.issue("sts-other", bucket, "c/", 900)
    at = short.expires_at + timedelta(seconds=3)
    assert sts.reap("sts-reap", now=at) == [short.id]
    assert sorted(temp_ids(rgw_admin, "sts")) == sorted([long.id, other.id])
    assert sts.reap("sts-reap", now=at) == []


def test_s3_sts_purge_of_g1_leaves_g10_roles(sts: StsIssuer, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """The fixtures' STS teardown purges its worker's tag: g1's must not reach g10's roles (a text prefix)."""
    bucket = rgw_bucket()
    g1 = sts.issue("sts-run-g1-aaaaaa", bucket, "a/", 900)
    g10 = sts.issue("sts-run-g10-bbbbbb", bucket, "b/", 900)
    assert sts.list_ids("sts-run-g1") == [g1.id]
    assert sts.purge("sts-run-g1") == [g1.id]
    assert temp_ids(rgw_admin, "sts-run") == [g10.id]


@pytest.mark.parametrize("ttl", [0, -1, 43201])
def test_s3_sts_ttl_outside_limits_refused(sts: StsIssuer, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, ttl: int) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="ttl_seconds"):
        sts.issue("sts-bad", rgw_bucket(), "data/", ttl)
    assert temp_ids(rgw_admin, "sts-bad") == []


def test_s3_sts_ttl_below_rgw_minimum_refused_and_role_removed(sts: StsIssuer, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """The test RGW's rgw_sts_min_session_duration is 5 s: RGW itself refuses 3 s, and the role is rolled back."""
    with pytest.raises(ValueError, match="session duration"):
        sts.issue("sts-min", rgw_bucket(), "data/", 3)
    assert temp_ids(rgw_admin, "sts-min") == []


@pytest.mark.parametrize("session_policy, expected", [(True, DENY), (False, ALLOW)])
def test_s3_sts_multi_delete_with_and_without_session_policy(rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, session_policy: bool, expected: str) -> None:  # noqa: F811
    """Measured RGW 16.2 deviation: any session policy makes every key of DeleteObjects AccessDenied. Without one
    (the per-credential role policy still scopes the session) it works, and keys outside stay protected."""
    issuer = StsIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, assumer_uid="cpt-test-assumer2",
                       session_policy=session_policy)
    bucket = rgw_bucket()
    try:
        cred = issuer.issue("sts-mdel", bucket, "data/", 900)
        for key in ("data/a", "data2/b"):
            rgw_admin.s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        c = s3_client(rgw.endpoint, **cred.client_kwargs())
        inside = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "data/a"}]})
        assert (ALLOW if not inside.get("Errors") else DENY) == expected, inside.get("Errors")
        outside = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "data2/b"}]})
        assert [e["Code"] for e in outside.get("Errors", [])] == ["AccessDenied"]
    finally:
        issuer.purge("sts-mdel")
        issuer.remove_assumer()


def test_s3_role_listing_complete_while_other_roles_churn(rgw: RgwInfo, rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """Measured RGW 16.2 behaviour: ListRoles answers a bare 404 when a role it listed is deleted before it reads
    it (16 of 373 listings under create/delete churn, so 150 listings meet it 998 times in 1000). ``role_names``
    must never read that as "no roles": every listing taken while another thread makes and deletes roles still
    holds the roles that stand throughout."""
    trust = policy.compact(policy.document([{"Effect": "Allow", "Principal": {"AWS": [policy.user_arn("nobody")]},
                                             "Action": ["sts:AssumeRole"]}]))
    standing = [f"cptest-standing-{i}" for i in range(3)]
    for name in standing:
        rgw_admin.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    stop = threading.Event()
    churned = 0

    def churn() -> None:
        nonlocal churned
        other = RgwAdminSession(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)
        while not stop.is_set():
            name = f"cptest-churn-{churned}"
            other.iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
            other.iam.delete_role(RoleName=name)
            churned += 1

    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        listings = [set(rgw_admin.role_names()) for _ in range(150)]
    finally:
        stop.set()
        worker.join(timeout=30)
        for name in standing:
            rgw_admin.delete_role(name)
    assert churned > 50, f"only {churned} roles churned: the race was hardly exercised"
    short = [i for i, names in enumerate(listings) if not set(standing) <= names]
    assert not short, f"{len(short)} of {len(listings)} listings lacked a standing role (first at {short[0]})"
