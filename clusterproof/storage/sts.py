"""Temporary credentials through RGW STS: AssumeRole with an inline session policy and DurationSeconds = TTL.

Each credential gets its own role ``cptmp.<customer>.<expiry-epoch>.<nonce>`` whose permission policy is the same
prefix grant as the session policy. Why a role per credential: STS session tokens are self-contained (encrypted
with ``rgw sts key``) and survive the deletion of the user who assumed the role; deleting the *role policy* is the
only way to end one early, so ``revoke`` needs a role of its own. The sessions die at their expiry on their own;
``reap`` only removes the expired roles.

AssumeRole is called by one assumer user (``assumer_uid``, created on first use, no buckets allowed) named in
each role's trust policy. It owns nothing, so no ACL fallback widens a session.

Measured on RGW 16.2: with any session policy, DeleteObjects (multi-object delete) answers AccessDenied for every
key, even inside the grant (single DeleteObject works). ``session_policy=False`` avoids it: the per-credential role
policy still scopes the session.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from clusterproof.redact import REDACTOR
from clusterproof.storage import policy
from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.client import AWS_ERRORS, answer_of
from clusterproof.storage.model import (
    IssuerError,
    Permission,
    TempCredential,
    checked_request,
)
from clusterproof.storage.names import TempName, decode_role_name, new_name
from clusterproof.storage.rollback import undone_on_failure
from clusterproof.storage.sweep import NameSweeper

ROLE_POLICY_NAME = "cp-prefix-grant"
#: RGW caps a role's MaxSessionDuration at 12 h, like AWS.
STS_MAX_TTL_SECONDS = 43200


#: RGW refuses an AssumeRole session policy longer than this (rgw_sts: "Policy size exceeds 2048").
SESSION_POLICY_MAX_BYTES = 2048


class StsIssuer(NameSweeper):
    """Issues STS session credentials scoped to one bucket and prefix (kind ``sts``)."""

    kind = "sts"

    def __init__(
        self,
        endpoint: str,
        admin_access_key: str,
        admin_secret_key: str,
        *,
        region: str = "default",
        assumer_uid: str = "cp-sts-assumer",
        max_ttl_seconds: int = STS_MAX_TTL_SECONDS,
        session_policy: bool = True,
        deny_anonymous_reads: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        """Raises ValueError for a bad endpoint, empty admin keys or a maximum TTL above 12 h."""
        if not 1 <= max_ttl_seconds <= STS_MAX_TTL_SECONDS:
            raise ValueError(f"max_ttl_seconds {max_ttl_seconds}: must be 1..{STS_MAX_TTL_SECONDS}")
        self.admin = RgwAdminSession(endpoint, admin_access_key, admin_secret_key, region=region, timeout_s=timeout_s)
        self.endpoint = self.admin.endpoint
        self.assumer_uid = assumer_uid
        self.max_ttl_seconds = max_ttl_seconds
        self.session_policy = session_policy
        self.deny_anonymous_reads = deny_anonymous_reads
        self._sts: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StsIssuer({self.endpoint!r}, assumer_uid={self.assumer_uid!r}, session_policy={self.session_policy})"

    def issue(
        self, customer: str, bucket: str, prefix: str, ttl_seconds: int, permission: Permission = "object-read-write"
    ) -> TempCredential:
        """Create a role for the grant and assume it for ``ttl_seconds``.

        Raises:
            ValueError: bad input, a missing bucket, or a TTL below RGW's ``rgw_sts_min_session_duration``
                (the role is deleted again).
            IssuerError: RGW failed; the role is deleted again.
        """
        req = checked_request(self.admin, self.endpoint, self.kind, self.max_ttl_seconds, self.deny_anonymous_reads,
                              customer, bucket, prefix, permission, ttl_seconds)
        customer, bucket, prefix, permission, ttl_seconds = req.customer, req.bucket, req.prefix, req.permission, req.ttl_seconds
        sts = self._assumer_sts()
        # One second of slack: the role's expiry must not come before the session's (reaping the role would
        # revoke a session that is still valid), and RGW starts the clock a little after we read ours.
        expires_epoch = math.ceil(time.time()) + ttl_seconds + 1
        name = new_name(customer, expires_epoch)
        role = name.role_name()
        doc = policy.identity_policy(bucket, prefix, permission, datetime.fromtimestamp(expires_epoch, UTC))
        trust = policy.document([{"Effect": "Allow", "Principal": {"AWS": [policy.user_arn(self.assumer_uid)]},
                                  "Action": ["sts:AssumeRole"]}])
        # The session policy is the grant alone: RGW refuses session policies above 2,048 bytes (the full
        # document is ~2,500), and the role policy's Deny statements bind the session anyway. A long prefix can
        # still push it over: say so here, rather than let RGW's bare 400 read like a refused duration.
        session_text = policy.compact(policy.document(policy.grant_statements(bucket, prefix, permission)))
        if self.session_policy and len(session_text) > SESSION_POLICY_MAX_BYTES:
            raise ValueError(
                f"prefix of {len(prefix)} characters: the STS session policy would be {len(session_text)} bytes, "
                f"above RGW's {SESSION_POLICY_MAX_BYTES}-byte limit for session policies; use a shorter prefix"
            )
        left = f"role {role} is left (no session was handed out) until the reaper removes it after epoch {expires_epoch}"
        # Also after a failed create: its answer may have been lost with the role made (RGW restarting).
        with undone_on_failure(lambda: self.admin.delete_role(role), left):
            resp = self._create_and_assume(sts, role, trust, doc, session_text, customer, ttl_seconds)
        creds = resp["Credentials"]
        for value in (creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]):
            REDACTOR.add(value)  # registered the moment they arrive, before anything could log them
        expires_at = creds["Expiration"]
        if not isinstance(expires_at, datetime):
            expires_at = datetime.fromisoformat(str(expires_at).replace("Z", "+00:00"))
        return TempCredential(
            id=role, access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"], expires_at=expires_at.astimezone(UTC), customer=customer,
            bucket=bucket, prefix=prefix, permission=permission, issuer=self.kind,
        )

    def _create_and_assume(self, sts: Any, role: str, trust: dict[str, Any], doc: dict[str, Any], session_text: str,
                           customer: str, ttl_seconds: int) -> Any:
        """Create ``role`` with its policy and assume it; AWS errors become IssuerError (ValueError for a refused
        duration). The caller undoes the role on any failure."""
        try:
            created = self.admin.iam.create_role(RoleName=role, AssumeRolePolicyDocument=policy.compact(trust),
                                                 MaxSessionDuration=self.max_ttl_seconds)
        except AWS_ERRORS as e:
            raise IssuerError(f"{self.endpoint}: create role {role}: {answer_of(e)}") from None
        try:
            self.admin.iam.put_role_policy(RoleName=role, PolicyName=ROLE_POLICY_NAME, PolicyDocument=policy.compact(doc))
            extra = {"Policy": session_text} if self.session_policy else {}
            return sts.assume_role(RoleArn=created["Role"]["Arn"], RoleSessionName=f"cp-{customer}"[:64],
                                   DurationSeconds=ttl_seconds, **extra)
        except AWS_ERRORS as e:
            answer = answer_of(e)
            if answer.status == 400 and getattr(e, "operation_name", "") == "AssumeRole":
                raise ValueError(
                    f"ttl_seconds {ttl_seconds}: RGW refused the session duration ({answer}); it must lie between "
                    f"rgw_sts_min_session_duration (900 s unless lowered) and {self.max_ttl_seconds} s"
                ) from None
            raise IssuerError(f"{self.endpoint}: issue STS credential via role {role}: {answer}") from None

    def revoke(self, credential: TempCredential) -> None:
        """End the session now by deleting its role (and the role's policy).

        Raises:
            ValueError: the id is not a temporary role's name.
        """
        if decode_role_name(credential.id) is None:
            raise ValueError(f"credential id {credential.id!r}: not a temporary role of this scheme")
        self.admin.delete_role(credential.id)

    def remove_assumer(self) -> bool:
        """Delete the assumer user (after the last credential). Returns False when it did not exist."""
        with self._lock:
            self._sts = None
        return self.admin.delete_user(self.assumer_uid)

    def _principal_names(self) -> list[str]:
        return list(self.admin.role_names())

    def _decode_name(self, name: str) -> TempName | None:
        return decode_role_name(name)

    def _delete_principal(self, name: str) -> bool:
        return bool(self.admin.delete_role(name))

    def _assumer_sts(self) -> Any:
        with self._lock:
            if self._sts is None:
                keys = self.admin.ensure_user(self.assumer_uid, "clusterproof STS assumer")
                self._sts = self.admin.client("sts", *keys)
            return self._sts

