"""Concurrency: credentials issued in parallel all work and none loses another's grant; reaping while issuing
leaves no half-made credential (a user or role without its policy) behind.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from clusterproof.findings import Criterion
from clusterproof.storage import CredentialIssuer, IssuerError, RgwAdminSession, TempCredential
from clusterproof.storage.cleanup import grant_state, temp_ids
from clusterproof.storage.matrix import ALLOW, DENY, attempt
from fixtures.s3 import Connect

pytestmark = pytest.mark.criterion(Criterion.CREDENTIAL_RESILIENCE)

PARALLEL = 20


def test_s3_parallel_issuance_all_credentials_work(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_connect: Connect) -> None:
    prefixes = [f"p{i:02d}/" for i in range(PARALLEL)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        creds = list(pool.map(lambda p: s3_issuer.issue(s3_customer, s3_bucket, p, 600), prefixes))

    def check(cred: TempCredential) -> list[str]:
        c = s3_connect(cred)
        neighbour = prefixes[(prefixes.index(cred.prefix) + 1) % PARALLEL]
        problems = []
        for what, call, expected in (
            ("put own prefix", lambda: c.put_object(Bucket=s3_bucket, Key=cred.prefix + "x", Body=b"x"), ALLOW),
            ("get own prefix", lambda: c.get_object(Bucket=s3_bucket, Key=cred.prefix + "x")["Body"].read(), ALLOW),
            ("put neighbour prefix", lambda: c.put_object(Bucket=s3_bucket, Key=neighbour + "y", Body=b"y"), DENY),
        ):
            obs = attempt(call)
            if obs.observed != expected:
                problems.append(f"{cred.prefix} {what}: expected {expected}, RGW answered {obs.detail}")
        return problems

    with ThreadPoolExecutor(PARALLEL) as pool:
        problems = [p for found in pool.map(check, creds) for p in found]
    assert not problems, f"{len(problems)} problem(s) among {PARALLEL} parallel credentials:\n" + "\n".join(problems)
    for cred in creds:
        s3_issuer.revoke(cred)


def test_s3_parallel_reap_and_issue_leave_no_orphan(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_admin: RgwAdminSession) -> None:
    """Short-lived credentials are issued while a reaper keeps running: a reaper may delete a user the issuer is
    still setting up. Either way, no temporary user or role may remain without its policy."""
    ttl = 5 if s3_issuer.kind == "sts" else 1
    outcomes: list[str] = []

    def issue(i: int) -> None:
        try:
            s3_issuer.issue(s3_customer, s3_bucket, f"r{i}/", ttl)
            outcomes.append("issued")
        except IssuerError as e:
            outcomes.append(f"failed cleanly: {e}")

    def reap_repeatedly(stop_at: datetime) -> int:
        rounds = 0
        while datetime.now(UTC) < stop_at:
            s3_issuer.reap(s3_customer)
            rounds += 1
        return rounds

    with ThreadPoolExecutor(6) as pool:
        reaper = pool.submit(reap_repeatedly, datetime.now(UTC) + timedelta(seconds=3))
        list(pool.map(issue, range(10)))
        assert reaper.result() > 0

    # grant_state raises on anything but a definite answer (an outage, AccessDenied): the test fails with it
    # instead of counting an unknown as "has its policy".
    orphans = [i for i in temp_ids(s3_admin, s3_customer) if grant_state(s3_admin, i) == "no-grant"]
    assert not orphans, f"temporary identities without their policy: {orphans}"
    s3_issuer.reap(s3_customer, datetime.now(UTC) + timedelta(days=1))
    left = temp_ids(s3_admin, s3_customer)
    assert not left, f"after a full reap these remain: {left} (outcomes: {outcomes})"

