"""Temporary credentials as temporary RGW users: the R2-style scheme a provider runs on Ceph without a database.

Each credential is a user ``cptmp_<customer>_<expiry-epoch>_<nonce>`` (see ``names``) with ``max_buckets=-1`` (it
cannot create buckets) and one S3 key. The prefix grant is a per-user IAM policy (PutUserPolicy) by default;
``grant_style="bucket-policy"`` puts the same statements into the bucket policy instead, with the user as
principal (slower per request as it grows, and a read-modify-write: see ``RgwAdminSession.update_bucket_policy``).
The reaper lists users, decodes the uid and deletes the expired ones; the policy's own expiry Deny makes RGW
refuse the key at expiry even before the reaper runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from clusterproof.storage import policy
from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.model import (
    Permission,
    TempCredential,
    checked_request,
)
from clusterproof.storage.names import TempName, decode_uid, new_name
from clusterproof.storage.rollback import undone_on_failure
from clusterproof.storage.sweep import NameSweeper

GrantStyle = Literal["user-policy", "bucket-policy"]
USER_POLICY_NAME = "cp-prefix-grant"
_DISPLAY_PREFIX = "cp-temp-on-"  # display name records the bucket, so the reaper finds bucket-policy grants


class RgwUserIssuer(NameSweeper):
    """Issues temporary RGW users scoped to one bucket and prefix (kind ``rgw-user``)."""

    kind = "rgw-user"

    def __init__(
        self,
        endpoint: str,
        admin_access_key: str,
        admin_secret_key: str,
        *,
        region: str = "default",
        grant_style: GrantStyle = "user-policy",
        max_ttl_seconds: int = 604800,
        deny_anonymous_reads: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        """Raises ValueError for an unknown grant style, a bad endpoint or empty admin keys."""
        if grant_style not in ("user-policy", "bucket-policy"):
            raise ValueError(f"grant_style {grant_style!r}: expected 'user-policy' or 'bucket-policy'")
        self.admin = RgwAdminSession(endpoint, admin_access_key, admin_secret_key, region=region, timeout_s=timeout_s)
        self.endpoint = self.admin.endpoint
        self.grant_style: GrantStyle = grant_style
        self.max_ttl_seconds = max_ttl_seconds
        self.deny_anonymous_reads = deny_anonymous_reads

    def __repr__(self) -> str:
        return f"RgwUserIssuer({self.endpoint!r}, grant_style={self.grant_style!r})"

    def policy_document(self, bucket: str, prefix: str, permission: Permission, expires_at: datetime) -> dict[str, Any]:
        """The per-credential policy; the hole finder overrides this to build deliberately weakened grants."""
        return policy.identity_policy(bucket, prefix, permission, expires_at)

    def issue(
        self, customer: str, bucket: str, prefix: str, ttl_seconds: int, permission: Permission = "object-read-write"
    ) -> TempCredential:
        """Create a temporary user for ``bucket``/``prefix`` that expires after ``ttl_seconds``.

        Raises:
            ValueError: bad customer, bucket, prefix, TTL or permission, or the bucket does not exist.
            IssuerError: RGW failed; the user (and its bucket-policy statements) are removed again, the removal
                retried while RGW is away (``rollback.ROLLBACK_BUDGET_S``); the message says when that failed too.
        """
        req = checked_request(self.admin, self.endpoint, self.kind, self.max_ttl_seconds, self.deny_anonymous_reads,
                              customer, bucket, prefix, permission, ttl_seconds)
        customer, bucket, prefix, permission, ttl_seconds = req.customer, req.bucket, req.prefix, req.permission, req.ttl_seconds
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
        name = new_name(customer, int(expires_at.timestamp()))
        uid = name.uid()
        doc = self.policy_document(bucket, prefix, permission, expires_at)
        left = (f"{uid} is left (its key never left this issuer) until the reaper removes it after "
                f"{expires_at.isoformat()}")
        with undone_on_failure(lambda: self._delete(uid, bucket), left):
            # Inside: a create whose answer was lost (RGW restarting) may still have made the user.
            access_key, secret_key = self.admin.create_user(uid, _DISPLAY_PREFIX + bucket)
            if self.grant_style == "user-policy":
                self.admin.put_user_policy(uid, USER_POLICY_NAME, doc)
            else:
                self._add_bucket_grant(bucket, uid, doc)
        return TempCredential(
            id=uid, access_key_id=access_key, secret_access_key=secret_key, session_token=None,
            expires_at=expires_at, customer=customer, bucket=bucket, prefix=prefix, permission=permission,
            issuer=self.kind,
        )

    def revoke(self, credential: TempCredential) -> None:
        """Delete the credential's user (and its bucket-policy statements) now.

        Raises:
            ValueError: the id is not a temporary user's uid (never deletes anything else).
        """
        if decode_uid(credential.id) is None:
            raise ValueError(f"credential id {credential.id!r}: not a temporary user of this scheme")
        # An empty bucket (the service revokes by id alone) means: read it from the user's display name.
        self._delete(credential.id, credential.bucket or None)

    # --- what NameSweeper needs -----------------------------------------------------------------------------

    def _principal_names(self) -> list[str]:
        return list(self.admin.user_ids())

    def _decode_name(self, name: str) -> TempName | None:
        return decode_uid(name)

    def _delete_principal(self, name: str) -> bool:
        return self._delete(name, None)

    # --- internals ------------------------------------------------------------------------------------------

    def _delete(self, uid: str, bucket: str | None) -> bool:
        """Remove the grant statements first (a dangling principal must not outlive its user), then the user."""
        if self.grant_style == "bucket-policy":
            if bucket is None:
                display = self.admin.user_display_name(uid)
                if display is None:
                    return False
                bucket = display[len(_DISPLAY_PREFIX):] if display.startswith(_DISPLAY_PREFIX) else None
            if bucket and self.admin.bucket_owner(bucket) is not None:
                self.admin.update_bucket_policy(
                    bucket, lambda doc: policy.without_sid_prefix(doc, uid),
                    lambda doc: not any(s.startswith(uid + ".") for s in policy.sids(doc)),
                )
        return self.admin.delete_user(uid)

    def _add_bucket_grant(self, bucket: str, uid: str, doc: dict[str, Any]) -> None:
        statements = policy.for_principal(doc["Statement"], policy.user_arn(uid), uid)
        wanted = {s["Sid"] for s in statements}
        self.admin.update_bucket_policy(
            bucket, lambda current: policy.with_statements(current, statements),
            lambda current: wanted <= policy.sids(current),
        )
