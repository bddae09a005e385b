"""RgwUserIssuer against a real RGW: the credential, its scope, revoke, reap by customer and time, nothing created
on bad input, the bucket owner's access, and both grant styles (with the bucket-policy read-modify-write race)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from clusterproof.redact import REDACTOR
from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import (
    RgwAdminSession,
    RgwUserIssuer,
    TempCredential,
    decode_uid,
    policy,
    s3_client,
)
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.matrix import ALLOW, DENY, attempt
from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401


@pytest.fixture(params=["user-policy", "bucket-policy"])
def issuer(request: pytest.FixtureRequest, rgw: RgwInfo) -> RgwUserIssuer:  # noqa: F811
    """Yields: an RgwUserIssuer of each grant style on the test RGW. Scope: function."""
    return RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style=request.param)


def _works(endpoint: str, cred: TempCredential, key: str) -> str:
    c = s3_client(endpoint, **cred.client_kwargs())
    return attempt(lambda: c.put_object(Bucket=cred.bucket, Key=key, Body=b"x")).observed


def test_s3_rgw_user_credential_scoped_and_revocable(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    bucket = rgw_bucket()
    before = datetime.now(UTC).replace(microsecond=0)
    cred = issuer.issue("acme", bucket, "data", 600)
    name = decode_uid(cred.id)
    assert name is not None and name.customer == "acme" and name.expires_epoch == int(cred.expires_at.timestamp())
    assert before + timedelta(seconds=599) <= cred.expires_at <= datetime.now(UTC) + timedelta(seconds=601)
    assert cred.session_token is None and cred.prefix == "data/" and cred.issuer == "rgw-user"
    assert REDACTOR.redact(cred.secret_access_key) == "***REDACTED***"
    assert REDACTOR.redact(cred.access_key_id) == "***REDACTED***", "the access key id must be registered too"
    assert cred.access_key_id not in repr(cred)
    assert _works(rgw.endpoint, cred, "data/x") == ALLOW
    assert _works(rgw.endpoint, cred, "data2/x") == DENY
    issuer.revoke(cred)
    assert _works(rgw.endpoint, cred, "data/y") == DENY
    issuer.revoke(cred)  # twice is fine


def test_s3_rgw_user_cannot_create_buckets(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    cred = issuer.issue("acme", rgw_bucket(), "data/", 600)
    c = s3_client(rgw.endpoint, **cred.client_kwargs())
    assert attempt(lambda: c.create_bucket(Bucket=f"{cred.bucket}-own")).observed == DENY
    issuer.revoke(cred)


def test_s3_rgw_user_reap_by_customer_and_time(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    bucket = rgw_bucket()
    short = issuer.issue("reapme", bucket, "a/", 60)
    long = issuer.issue("reapme", bucket, "b/", 3600)
    lookalike = issuer.issue("reapme-corp", bucket, "c/", 60)
    at = short.expires_at + timedelta(seconds=1)
    assert issuer.reap("reapme", now=at) == [short.id]
    assert issuer.reap("reapme", now=at) == []
    assert sorted(temp_ids(rgw_admin, "reapme")) == sorted([long.id, lookalike.id])
    assert _works(rgw.endpoint, long, "b/x") == ALLOW and _works(rgw.endpoint, short, "a/x") == DENY
    assert sorted(issuer.reap(None, now=long.expires_at)) == sorted([long.id, lookalike.id])
    assert temp_ids(rgw_admin, "reapme") == []
    if issuer.grant_style == "bucket-policy":  # the reaper found the grants through the user's display name
        assert not [s for s in policy.sids(rgw_admin.bucket_policy(bucket)) if s.startswith("cptmp_")]


@pytest.mark.parametrize("bad", [
    {"prefix": "da*ta"}, {"prefix": "../x"}, {"customer": "acme_corp"}, {"ttl_seconds": 0},
    {"ttl_seconds": 604801}, {"bucket": "cpt-does-not-exist"}, {"permission": "admin-read-write"},
])
def test_s3_rgw_user_bad_input_creates_nothing(issuer: RgwUserIssuer, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, bad: dict[str, Any]) -> None:  # noqa: F811
    args: dict[str, Any] = {"customer": "badin", "bucket": rgw_bucket(), "prefix": "data/", "ttl_seconds": 60,
            "permission": "object-read-write"} | bad
    users_before = set(rgw_admin.user_ids())
    with pytest.raises(ValueError):
        issuer.issue(**args)
    assert set(rgw_admin.user_ids()) == users_before


def test_s3_rgw_user_objects_stay_readable_by_bucket_owner(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    cred = issuer.issue("acme", rgw_bucket(), "data/", 600)
    assert _works(rgw.endpoint, cred, "data/by-temp") == ALLOW
    issuer.revoke(cred)
    body = rgw_admin.s3.get_object(Bucket=cred.bucket, Key="data/by-temp")["Body"].read()
    assert body == b"x"
    sids = policy.sids(rgw_admin.bucket_policy(cred.bucket))
    assert {policy.OWNER_SID, policy.ANONYMOUS_SID} <= sids


def test_s3_bucket_policy_naive_read_modify_write_loses_a_grant(rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """Two writers read the same policy, each adds its user, both write: the first user's grant is gone.
    This is the interleaving the issuer's lock and read-back loop exist to prevent."""
    bucket = rgw_bucket()
    users = {}
    for who in ("first", "second"):
        uid = f"cptmp_race_9999999999_{'a' if who == 'first' else 'b'}{'0' * 7}"
        users[who] = (uid, rgw_admin.create_user(uid, uid))
    try:
        read_by_both = rgw_admin.bucket_policy(bucket)
        for who in ("first", "second"):
            uid = users[who][0]
            grant = policy.for_principal(policy.grant_statements(bucket, "data/", "object-read-write"),
                                         policy.user_arn(uid), uid)
            rgw_admin.s3.put_bucket_policy(Bucket=bucket, Policy=policy.compact(policy.with_statements(read_by_both, grant)))
        outcome = {}
        for who, (_, keys) in users.items():
            c = s3_client(rgw.endpoint, *keys)
            outcome[who] = attempt(partial(c.put_object, Bucket=bucket, Key="data/x", Body=b"x")).observed
        assert outcome == {"first": DENY, "second": ALLOW}, f"naive read-modify-write: {outcome}"
    finally:
        for uid, _ in users.values():
            rgw_admin.delete_user(uid)


def test_s3_bucket_policy_issuer_keeps_every_grant_under_parallel_issuance(rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """Same race, through the issuer: its per-bucket lock and read-back loop keep all 12 grants (this protects
    writers in one process only; separate processes have no If-Match to rely on)."""
    issuer = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style="bucket-policy")
    bucket = rgw_bucket()
    start = threading.Barrier(12)

    def issue(i: int) -> TempCredential:
        start.wait()
        return issuer.issue("race", bucket, f"p{i}/", 600)

    with ThreadPoolExecutor(12) as pool:
        creds = list(pool.map(issue, range(12)))
    sids = policy.sids(rgw_admin.bucket_policy(bucket))
    missing = [c.id for c in creds if f"{c.id}.cp-objects" not in sids]
    assert not missing, f"grants lost: {missing}"
    denied = [c.prefix for c in creds if _works(rgw.endpoint, c, c.prefix + "x") != ALLOW]
    assert not denied, f"credentials that do not work: {denied}"
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(issuer.revoke, creds))
    assert not [s for s in policy.sids(rgw_admin.bucket_policy(bucket)) if s.startswith("cptmp_")]
