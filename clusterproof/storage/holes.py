"""Deliberately weakened grants, and a hole finder that runs the access matrix against any issuer.

Two classic mistakes of prefix grants, kept here so the suite can prove it notices them:
``prefix-without-slash`` writes the resource as ``data*`` (which also matches ``data2/...``) and
``list-without-prefix-condition`` grants ListBucket with no ``s3:prefix`` condition (the whole bucket is listable).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clusterproof.storage import policy
from clusterproof.storage.client import s3_client
from clusterproof.storage.matrix import CASES, Actors, Case, Layout, run_matrix, seed, violations
from clusterproof.storage.model import CredentialIssuer, Permission
from clusterproof.storage.rgw_user import RgwUserIssuer

WEAKENINGS = ("prefix-without-slash", "list-without-prefix-condition")


class WeakenedRgwUserIssuer(RgwUserIssuer):
    """An RgwUserIssuer whose policy carries one classic mistake. Never use it outside hole-finding tests."""

    def __init__(self, *args: Any, weakening: str, **kwargs: Any) -> None:
        """Raises ValueError for an unknown weakening."""
        if weakening not in WEAKENINGS:
            raise ValueError(f"weakening {weakening!r}: expected one of {', '.join(WEAKENINGS)}")
        super().__init__(*args, **kwargs)
        self.weakening = weakening

    def __repr__(self) -> str:
        return f"WeakenedRgwUserIssuer({self.endpoint!r}, weakening={self.weakening!r})"

    def policy_document(self, bucket: str, prefix: str, permission: Permission, expires_at: datetime) -> dict[str, Any]:
        if self.weakening == "prefix-without-slash":
            return policy.identity_policy(bucket, prefix, permission, expires_at, object_pattern=prefix[:-1] + "*")
        return policy.identity_policy(bucket, prefix, permission, expires_at, list_condition=False)


def find_holes(
    issuer: CredentialIssuer,
    endpoint: str,
    owner_s3: Any,
    layout: Layout,
    customer: str,
    permission: Permission = "object-read-write",
    cases: tuple[Case, ...] = CASES,
    ttl_seconds: int = 600,
) -> list[str]:
    """Issue a credential for ``layout`` and run the matrix with it; the credential is revoked afterwards.

    ``owner_s3`` is the bucket owner's S3 client: it seeds the buckets and sets up what cases act on.

    Returns:
        One message per violated case, naming the hole (empty when the grant is tight).
    Raises:
        ValueError, IssuerError: from ``issuer.issue``.
    """
    cred = issuer.issue(customer, layout.bucket, layout.prefix, ttl_seconds, permission)
    try:
        actors = Actors(credential=s3_client(endpoint, **cred.client_kwargs()), owner=owner_s3,
                        anonymous=s3_client(endpoint, anonymous=True))
        seed(owner_s3, layout)
        return violations(run_matrix(actors, layout, permission, cases))
    finally:
        issuer.revoke(cred)
