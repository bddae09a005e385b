"""Sweeping temporary principals: scopes select at ``-`` boundaries (xdist worker g1 never touches g10), one failed
deletion does not stop a reap, and an orphan (a principal without its policy) is told apart from a gone one and
from an RGW that gives no answer. Unit tests on names, then a real RGW."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest

from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import (
    IssuerError,
    ReapError,
    RgwAdminSession,
    RgwUserIssuer,
    new_name,
    policy,
    s3_client,
)
from clusterproof.storage.cleanup import grant_state, temp_ids
from clusterproof.storage.matrix import ALLOW, attempt
from clusterproof.storage.names import customer_in_scope, decode_role_name, decode_uid, validate_scope
from clusterproof.storage.suite_cleanup import remove_suite_leftovers
from tests.rgw_fixture import foreign_owner, rgw, rgw_admin, rgw_bucket  # noqa: F401

RUN = "cpt-1a2b3c4d"
G1, G10, G11 = f"{RUN}-g1", f"{RUN}-g10", f"{RUN}-g11"


# --- scopes, no RGW ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("customer, in_g1", [
    (G1, True), (f"{G1}-0f3c9a", True), (f"{G1}-0f3c9a-corp", True),
    (G10, False), (f"{G10}-0f3c9a", False), (f"{G11}-abcdef", False), (f"{RUN}-g2-abcdef", False), (RUN, False),
])
def test_s3_scope_g1_never_covers_g10(customer: str, in_g1: bool) -> None:
    assert customer_in_scope(customer, G1) is in_g1
    # the same through the names the reaper actually reads, for users and roles
    name = new_name(customer, 1767225600)
    for decoded in (decode_uid(name.uid()), decode_role_name(name.role_name())):
        assert decoded is not None and customer_in_scope(decoded.customer, G1) is in_g1


@pytest.mark.parametrize("scope", ["", "cpt-", "sts-", "-g1", "Cpt-x", "cpt_x", None])
def test_s3_scope_must_be_a_customer_id(scope: object) -> None:
    with pytest.raises(ValueError, match="scope"):
        validate_scope(scope)


# --- a real RGW ----------------------------------------------------------------------------------------------


@pytest.fixture
def issuer(rgw: RgwInfo) -> RgwUserIssuer:  # noqa: F811
    """Yields: an RgwUserIssuer (user-policy grants) on the test RGW. Scope: function."""
    return RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)


def test_s3_purge_and_list_of_g1_leave_g10_alone(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    bucket = rgw_bucket()
    g1 = [issuer.issue(f"{G1}-{secrets.token_hex(3)}", bucket, "g1/", 600) for _ in range(2)]
    g10 = issuer.issue(f"{G10}-{secrets.token_hex(3)}", bucket, "g10/", 600)
    g11 = issuer.issue(f"{G11}-{secrets.token_hex(3)}", bucket, "g11/", 600)
    try:
        g1_ids = sorted(c.id for c in g1)
        assert sorted(issuer.list_ids(G1)) == g1_ids
        assert sorted(temp_ids(rgw_admin, G1)) == g1_ids
        assert sorted(issuer.purge(G1)) == g1_ids
        assert sorted(issuer.list_ids(RUN)) == sorted([g10.id, g11.id]), "g1's purge took g10's or g11's users"
        for cred in (g10, g11):  # still usable, not just listed
            client = s3_client(rgw.endpoint, **cred.client_kwargs())
            obs = attempt(partial(client.put_object, Bucket=bucket, Key=cred.prefix + "x", Body=b"x"))
            assert obs.observed == ALLOW, f"{cred.customer} after g1's purge: {obs.detail}"
        # the fixtures' sweep (purge + helper users + buckets) of g1 leaves g10 alone too
        done = remove_suite_leftovers(rgw_admin, tag=G1)
        assert done.problems == [] and sorted(done.users) == [], done
        assert sorted(temp_ids(rgw_admin, RUN)) == sorted([g10.id, g11.id])
    finally:
        issuer.purge(RUN)
    assert temp_ids(rgw_admin, RUN) == []


def test_s3_reap_continues_past_a_failed_deletion_and_reports_both(rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, foreign_owner: tuple[str, str]) -> None:  # noqa: F811
    """A real failure: with bucket-policy grants, deleting a credential first rewrites its bucket's policy as the
    bucket's owner. Once that owner's key is gone, the rewrite fails (IssuerError); the reap must still delete the
    other expired credentials, then raise one ReapError naming the failure and listing what it deleted."""
    owner_uid, owner_key = foreign_owner
    issuer = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style="bucket-policy")
    customer = f"reapfail-{secrets.token_hex(3)}"
    stuck = issuer.issue(customer, owner_uid, "data/", 60)
    bucket = rgw_bucket()
    fine = [issuer.issue(customer, bucket, f"p{i}/", 60) for i in range(3)]
    rgw_admin.rgw.remove_key(access_key=owner_key, uid=owner_uid)
    later = max(c.expires_at for c in [stuck, *fine]) + timedelta(seconds=1)
    try:
        with pytest.raises(ReapError) as raised:
            issuer.reap(customer, now=later)
        err = raised.value
        assert sorted(err.deleted) == sorted(c.id for c in fine), f"deleted {err.deleted}: {err}"
        assert list(err.failures) == [stuck.id] and stuck.id in str(err) and owner_uid in err.failures[stuck.id], err
        assert temp_ids(rgw_admin, customer) == [stuck.id], "the failed one must stay (its grant is still there)"
        rgw_admin.rgw.create_key(uid=owner_uid)  # give the owner a key back: a fresh issuer finds it
        retry = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style="bucket-policy")
        assert retry.reap(customer, now=later) == [stuck.id]
    finally:
        if not rgw_admin.user_keys(owner_uid):
            rgw_admin.rgw.create_key(uid=owner_uid)
        RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style="bucket-policy").purge(customer)
    assert temp_ids(rgw_admin, customer) == []


def test_s3_grant_state_tells_granted_orphan_and_gone_apart(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """RGW answers NoSuchEntity for a user without policies as for a missing one: only the existence check
    after it may call the principal gone. The orphan (user without policy) must come out as ``no-grant``."""
    granted = issuer.issue("grantstate", rgw_bucket(), "data/", 600)
    orphan_uid = new_name("grantstate", 2000000000).uid()
    rgw_admin.create_user(orphan_uid, orphan_uid)  # what a half-made credential leaves: a user, no policy
    orphan_role = new_name("grantstate", 2000000000).role_name()
    trust = policy.document([{"Effect": "Allow", "Principal": {"AWS": [policy.user_arn("nobody")]},
                              "Action": ["sts:AssumeRole"]}])
    rgw_admin.iam.create_role(RoleName=orphan_role, AssumeRolePolicyDocument=policy.compact(trust))
    try:
        assert grant_state(rgw_admin, granted.id) == "granted"
        assert grant_state(rgw_admin, orphan_uid) == "no-grant"
        assert grant_state(rgw_admin, orphan_role) == "no-grant"
    finally:
        issuer.revoke(granted)
        rgw_admin.delete_user(orphan_uid)
        rgw_admin.delete_role(orphan_role)
    for gone in (granted.id, orphan_uid, orphan_role):
        assert grant_state(rgw_admin, gone) == "gone"


def test_s3_grant_state_raises_when_rgw_gives_no_answer(issuer: RgwUserIssuer, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """An identity without IAM rights gets AccessDenied: that is no answer about the policy, so it must raise
    (the concurrency suite then fails with it) instead of counting as "has its policy" or "gone"."""
    cred = issuer.issue("grantdeny", rgw_bucket(), "data/", 600)
    try:
        unprivileged = RgwAdminSession(rgw.endpoint, cred.access_key_id, cred.secret_access_key)
        with pytest.raises(IssuerError, match="403"):
            grant_state(unprivileged, cred.id)
    finally:
        issuer.revoke(cred)


def test_s3_tag_sweep_takes_its_helpers_and_buckets_and_not_g10s(rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """The fixtures' sweep of one tag: g1's helper user and bucket go (objects included), g10's stay."""
    made = {tag: (f"{tag}-assumer", f"cp-{tag.removeprefix('cpt-')}-{secrets.token_hex(3)}") for tag in (G1, G10)}
    for uid, bucket in made.values():
        rgw_admin.create_user(uid, "helper")
        rgw_admin.s3.create_bucket(Bucket=bucket)
        rgw_admin.s3.put_object(Bucket=bucket, Key="data/x", Body=b"x")
    try:
        done = remove_suite_leftovers(rgw_admin, tag=G1)
        assert done.problems == [], done.problems
        assert done.helper_users == [made[G1][0]] and done.buckets == [made[G1][1]], done
        users = set(rgw_admin.user_ids())
        buckets = {b["Name"] for b in rgw_admin.s3.list_buckets()["Buckets"]}
        assert made[G1][0] not in users and made[G1][1] not in buckets
        assert made[G10][0] in users and made[G10][1] in buckets, "g1's sweep reached g10"
    finally:
        done = remove_suite_leftovers(rgw_admin, tag=G10)
    assert done.helper_users == [made[G10][0]] and done.buckets == [made[G10][1]], done


@pytest.mark.parametrize("tag, stale", [("", False), ("cpt-", False), ("cpt_x", False), (G1, True)])
def test_s3_tag_sweep_refuses_a_bad_tag_or_a_tag_with_staleness(tag: str, stale: bool) -> None:
    from datetime import UTC, datetime

    with pytest.raises(ValueError):
        remove_suite_leftovers(None, stale_before=datetime.now(UTC) if stale else None, tag=tag)  # type: ignore[arg-type]
