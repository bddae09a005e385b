"""Expiry and reaping: a credential works before its expiry, is refused after it (on its own, and after the reaper
runs), revocation is immediate, and the reaper deletes exactly the expired credentials of the customer it is given,
once, even when two reapers run at the same time.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from clusterproof.findings import Criterion
from clusterproof.storage import CredentialIssuer, TempCredential
from clusterproof.storage.matrix import ALLOW, DENY, attempt, wait_until_denied
from fixtures.s3 import Connect

pytestmark = pytest.mark.criterion(Criterion.EXPIRY)

#: The shortest TTL per kind. STS cannot go below RGW's rgw_sts_min_session_duration (the sandbox sets 5 s).
SHORT_TTL = {"rgw-user": 4, "http": 4, "sts": 5}
#: How long after its expiry a credential may still work: clock skew between here and RGW, request latency.
EXPIRY_MARGIN = timedelta(seconds=5)


def issue_short(issuer: CredentialIssuer, customer: str, bucket: str) -> TempCredential:
    try:
        return issuer.issue(customer, bucket, "data/", SHORT_TTL[issuer.kind])
    except ValueError as e:
        if "session duration" in str(e):
            pytest.skip(f"{issuer.kind}: this RGW's minimum STS session is above {SHORT_TTL['sts']} s: {e}")
        raise


def sleep_past(moment: datetime) -> None:
    """Wait until ``moment`` has passed by a little (expiry epochs have whole seconds)."""
    import time

    # +2.5 s: expiry epochs are whole seconds, and an sts role outlives its session by up to 2 s.
    remaining = (moment - datetime.now(UTC)).total_seconds() + 2.5
    if remaining > 0:
        time.sleep(remaining)


def test_s3_credential_refused_after_expiry_without_reaper(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_connect: Connect, s3_record: Callable[..., None]) -> None:
    """No reaper runs here: the policy's expiry Deny (rgw-user, http) or the session's own end (sts) must do it.
    The probe reads an object the credential wrote itself: RGW's owner fallback would otherwise still allow it."""
    cred = issue_short(s3_issuer, s3_customer, s3_bucket)
    client = s3_connect(cred)
    key = cred.prefix + "own"
    assert attempt(lambda: client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")).observed == ALLOW
    obs, at = wait_until_denied(lambda: client.get_object(Bucket=s3_bucket, Key=key)["Body"].read(),
                                cred.expires_at + EXPIRY_MARGIN)
    s3_record(issuer=s3_issuer.kind, permission=cred.permission, operation="get_own_after_expiry",
              where="inside", expected=DENY, observed=obs.observed, detail=f"{obs.detail} at {at.isoformat()}")
    assert obs.observed == DENY, (
        f"{s3_issuer.kind}: credential still reads its own object {EXPIRY_MARGIN.seconds} s after expiry "
        f"{cred.expires_at.isoformat()} (RGW answered {obs.detail}): expiry is left to the reaper")
    assert at >= cred.expires_at - timedelta(seconds=2), f"refused at {at.isoformat()}, before its expiry {cred.expires_at.isoformat()}"


def test_s3_reap_deletes_expired_and_spares_the_rest(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_tag: str, s3_connect: Connect) -> None:
    expired = issue_short(s3_issuer, s3_customer, s3_bucket)
    lookalike_customer = f"{s3_customer}-corp"  # shares the text "<customer>" as a prefix
    lookalike = issue_short(s3_issuer, lookalike_customer, s3_bucket)
    same_customer_alive = s3_issuer.issue(s3_customer, s3_bucket, "data/", 600)
    other_customer = f"{s3_tag}-{secrets.token_hex(3)}"
    other_alive = s3_issuer.issue(other_customer, s3_bucket, "data/", 600)
    sleep_past(max(expired.expires_at, lookalike.expires_at))

    deleted = s3_issuer.reap(s3_customer)

    assert expired.id in deleted, f"reap({s3_customer!r}) returned {deleted}, not the expired {expired.id}"
    assert same_customer_alive.id not in deleted and lookalike.id not in deleted, f"reap deleted too much: {deleted}"
    for cred, expected in ((expired, DENY), (same_customer_alive, ALLOW), (other_alive, ALLOW)):
        c = s3_connect(cred)
        obs = attempt(partial(c.list_objects_v2, Bucket=s3_bucket, Prefix=cred.prefix))
        assert obs.observed == expected, f"{cred.customer} ({cred.id}) after the reap: {obs.detail}, expected {expected}"
    assert lookalike.id in s3_issuer.reap(lookalike_customer)
    for cred in (same_customer_alive, other_alive):
        s3_issuer.revoke(cred)


def test_s3_reaper_idempotent_and_safe_twice_at_once(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str) -> None:
    creds = [s3_issuer.issue(s3_customer, s3_bucket, f"p{i}/", 600) for i in range(3)]
    later = max(c.expires_at for c in creds) + timedelta(seconds=2)  # reap "as of" after their expiry
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: s3_issuer.reap(s3_customer, later), range(2))
    ids = {c.id for c in creds}
    assert set(first) | set(second) == ids, f"two reapers deleted {first} and {second}, expected {sorted(ids)}"
    assert not set(first) & set(second), f"both reapers claim {set(first) & set(second)}"
    assert s3_issuer.reap(s3_customer, later) == [], "a third reap found something left"


def test_s3_revoked_credential_denied_on_next_request(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_connect: Connect) -> None:
    cred = s3_issuer.issue(s3_customer, s3_bucket, "data/", 600)
    client = s3_connect(cred)
    assert attempt(lambda: client.list_objects_v2(Bucket=s3_bucket, Prefix=cred.prefix)).observed == ALLOW
    s3_issuer.revoke(cred)
    obs = attempt(lambda: client.list_objects_v2(Bucket=s3_bucket, Prefix=cred.prefix))
    assert obs.observed == DENY, f"{s3_issuer.kind}: the first request after revoke got {obs.detail}"
    s3_issuer.revoke(cred)  # revoking twice is not an error
