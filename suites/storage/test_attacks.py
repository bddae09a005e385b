"""Attacks on the credential scheme (``clusterproof.storage.attacks``): an STS credential without its session
token, one customer's credential on another customer's prefix (and through the API, on its revoke and cleanup),
a TTL above the maximum, customer ids that collide with another's user-name fields."""

from __future__ import annotations

from clusterproof.inventory import StorageSettings
from clusterproof.storage import CredentialIssuer, RgwAdminSession
from clusterproof.storage import attacks as at
from fixtures.findings import FindingRecorder
from fixtures.s3 import Connect


def _all_names(admin: RgwAdminSession) -> set[str]:
    return set(admin.user_ids()) | set(admin.role_names())


def test_s3_credential_without_session_token(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str,
                                             storage: StorageSettings, findings: FindingRecorder) -> None:
    cred = s3_issuer.issue(s3_customer, s3_bucket, "token/", 600)
    try:
        result = at.sts_without_token(cred, storage.endpoint, storage.region, s3_issuer.kind)
    finally:
        s3_issuer.revoke(cred)
    findings.check(result)


def test_s3_customer_credential_on_other_customer(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str,
                                                  s3_connect: Connect, findings: FindingRecorder) -> None:
    findings.check(at.cross_customer(s3_issuer, s3_connect, s3_bucket, f"{s3_customer}-a", f"{s3_customer}-b"))


def test_s3_ttl_above_maximum(s3_issuer: CredentialIssuer, s3_admin: RgwAdminSession, s3_bucket: str,
                              s3_customer: str, findings: FindingRecorder) -> None:
    findings.check(at.ttl_above_maximum(s3_issuer, s3_bucket, s3_customer, lambda: _all_names(s3_admin)))


def test_s3_colliding_customer_ids(s3_issuer: CredentialIssuer, s3_admin: RgwAdminSession, s3_bucket: str,
                                   s3_customer: str, s3_connect: Connect, findings: FindingRecorder) -> None:
    findings.check(at.colliding_customers(s3_issuer, s3_connect, s3_bucket, s3_customer,
                                          lambda: _all_names(s3_admin)))
