"""IAM policy documents for prefix-scoped temporary credentials on RGW, and the deny rules that close its holes.

The grant: object actions on ``arn:aws:s3:::<bucket>/<prefix>*`` (the prefix always ends with ``/``) and ListBucket
on the bucket only with ``StringLike s3:prefix <prefix>*``. The denies, each measured on RGW 16.2 and checked by
the access matrix (``clusterproof.storage.matrix``): a temporary user *owns* what it writes, and RGW's ACL fallback
lets an owner act on its objects where no policy Allow covers them, so an Allow-only policy is not enough:

- ``cp-expired``: everything, once ``aws:CurrentTime`` is past the expiry; RGW enforces expiry without the reaper;
- ``cp-outside-grant``: everything outside the bucket ARN and the prefix (ACL fallback, public or authenticated-read
  objects elsewhere);
- ``cp-object-acl``: reading or writing object ACLs (PutObjectAcl would publish an owned object);
- ``cp-canned-acl-*`` / ``cp-grant-*``: PutObject with a public canned ACL or any ``x-amz-grant-*`` header, one
  statement per value or header, because RGW 16.2 evaluates ``StringNotEquals`` with a list as "differs from any"
  and inverts ``Null``;
- ``cp-bucket-config``: bucket policy, ACL and configuration writes, bucket creation and deletion;
- ``cp-read-only`` (object-read-only only): every write action, whatever the bucket ACL says.

Bucket-level statements (set once per bucket, by the bucket owner): ``cp-owner-access`` keeps objects written by
temporary users readable by the owner; ``cp-deny-anonymous-reads`` stops anonymous GETs, which closes the one
publishing path no identity policy can: RGW 16.2 does not expose ``x-amz-acl`` to policy conditions on CopyObject
and CreateMultipartUpload, so ``ACL=public-read`` on those still marks the object public.

IAM and STS calls need compact JSON (RGW does not decode ``+`` back to a space in form bodies): use ``compact``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from clusterproof.storage.model import Permission

Statement = dict[str, Any]
VERSION = "2012-10-17"
OWNER_SID = "cp-owner-access"
ANONYMOUS_SID = "cp-deny-anonymous-reads"
PUBLIC_CANNED_ACLS = ("public-read", "public-read-write", "authenticated-read")
GRANT_HEADERS = ("read", "write", "read-acp", "write-acp", "full-control")
READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
OBJECT_ACL_ACTIONS = ("s3:PutObjectAcl", "s3:PutObjectVersionAcl", "s3:GetObjectAcl", "s3:GetObjectVersionAcl")
ALL_WRITES = (
    "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
    "s3:PutObjectAcl", "s3:PutObjectVersionAcl", "s3:PutObjectTagging", "s3:DeleteObjectTagging",
)
BUCKET_CONFIG_ACTIONS = (
    "s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:GetBucketPolicy",
    "s3:PutBucketAcl", "s3:GetBucketAcl", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
    "s3:PutBucketCORS", "s3:PutBucketTagging", "s3:PutReplicationConfiguration",
)


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def user_arn(uid: str) -> str:
    """The IAM principal of an RGW user; ``tenant$uid`` becomes ``arn:aws:iam::tenant:user/uid``."""
    tenant, _, user = uid.rpartition("$")
    return f"arn:aws:iam::{tenant}:user/{user}"


def compact(doc: dict[str, Any]) -> str:
    """The policy as JSON without spaces (RGW's IAM/STS form parser rejects documents with spaces)."""
    return json.dumps(doc, separators=(",", ":"))


def document(statements: Iterable[Statement]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def iso_utc(moment: datetime) -> str:
    """``2026-01-01T00:00:00Z``: the format ``aws:CurrentTime`` conditions compare against."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grant_statements(
    bucket: str, prefix: str, permission: Permission, *, object_pattern: str | None = None, list_condition: bool = True
) -> list[Statement]:
    """The Allow statements of a prefix grant.

    Args:
        object_pattern: what follows ``bucket/`` in the object resource; default ``<prefix>*``. Only the hole
            finder passes anything else (``data*``, the classic leak into ``data2/``).
        list_condition: False drops the ``s3:prefix`` condition from ListBucket (the other classic leak).
    """
    pattern = object_pattern if object_pattern is not None else prefix + "*"
    objects = f"{bucket_arn(bucket)}/{pattern}"
    actions = READ_ACTIONS + (WRITE_ACTIONS if permission == "object-read-write" else ())
    out: list[Statement] = [{"Sid": "cp-objects", "Effect": "Allow", "Action": list(actions), "Resource": [objects]}]
    if permission == "object-read-write":
        # RGW checks DeleteObjects (multi-object delete) against the bucket ARN before it checks each key; this
        # does not widen access: keys outside the grant still fail one by one.
        out.append({"Sid": "cp-multi-delete", "Effect": "Allow", "Action": ["s3:DeleteObject"],
                    "Resource": [bucket_arn(bucket)]})
    listing: Statement = {"Sid": "cp-list", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn(bucket)]}
    if list_condition:
        listing["Condition"] = {"StringLike": {"s3:prefix": [pattern]}}
    out.append(listing)
    return out


def deny_statements(
    bucket: str, prefix: str, permission: Permission, expires_at: datetime, *, object_pattern: str | None = None
) -> list[Statement]:
    """The explicit Deny statements that close the temporary-user holes (module docstring)."""
    pattern = object_pattern if object_pattern is not None else prefix + "*"
    out: list[Statement] = [
        {"Sid": "cp-expired", "Effect": "Deny", "Action": ["s3:*"], "Resource": ["*"],
         "Condition": {"DateGreaterThan": {"aws:CurrentTime": iso_utc(expires_at)}}},
        {"Sid": "cp-outside-grant", "Effect": "Deny", "Action": ["s3:*"],
         "NotResource": [bucket_arn(bucket), f"{bucket_arn(bucket)}/{pattern}"]},
        {"Sid": "cp-object-acl", "Effect": "Deny", "Action": list(OBJECT_ACL_ACTIONS), "Resource": ["*"]},
        {"Sid": "cp-bucket-config", "Effect": "Deny", "Action": list(BUCKET_CONFIG_ACTIONS), "Resource": ["*"]},
    ]
    for acl in PUBLIC_CANNED_ACLS:
        out.append({"Sid": f"cp-canned-acl-{acl}", "Effect": "Deny", "Action": ["s3:PutObject"], "Resource": ["*"],
                    "Condition": {"StringEquals": {"s3:x-amz-acl": acl}}})
    for header in GRANT_HEADERS:
        out.append({"Sid": f"cp-grant-{header}", "Effect": "Deny", "Action": ["s3:PutObject"], "Resource": ["*"],
                    "Condition": {"StringLike": {f"s3:x-amz-grant-{header}": "*"}}})
    if permission == "object-read-only":
        out.append({"Sid": "cp-read-only", "Effect": "Deny", "Action": list(ALL_WRITES), "Resource": ["*"]})
    return out


def identity_policy(
    bucket: str, prefix: str, permission: Permission, expires_at: datetime, *,
    object_pattern: str | None = None, list_condition: bool = True,
) -> dict[str, Any]:
    """The whole per-credential policy (user policy, role policy or STS session policy): grant plus denies."""
    return document(
        grant_statements(bucket, prefix, permission, object_pattern=object_pattern, list_condition=list_condition)
        + deny_statements(bucket, prefix, permission, expires_at, object_pattern=object_pattern)
    )


def for_principal(statements: Iterable[Statement], principal: str, sid_prefix: str) -> list[Statement]:
    """Identity statements turned into bucket-policy statements for one principal, Sids prefixed for removal."""
    out = []
    for st in statements:
        st = dict(st)
        st["Sid"] = f"{sid_prefix}.{st.get('Sid', 'st')}"
        st["Principal"] = {"AWS": [principal]}
        out.append(st)
    return out


def owner_access_statement(bucket: str, owner_uid: str) -> Statement:
    """Lets the bucket owner act on every object, also those a temporary user owns (RGW has per-writer owners)."""
    return {"Sid": OWNER_SID, "Effect": "Allow", "Principal": {"AWS": [user_arn(owner_uid)]}, "Action": ["s3:*"],
            "Resource": [f"{bucket_arn(bucket)}/*"]}


def deny_anonymous_reads_statement(bucket: str) -> Statement:
    """Denies GETs by anonymous requests (RGW names them ``aws:username = anonymous``), whatever an object ACL says."""
    return {"Sid": ANONYMOUS_SID, "Effect": "Deny", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
            "Resource": [f"{bucket_arn(bucket)}/*"], "Condition": {"StringEquals": {"aws:username": "anonymous"}}}


def with_statements(doc: dict[str, Any] | None, statements: Iterable[Statement]) -> dict[str, Any]:
    """A copy of a bucket policy with ``statements`` added, replacing any statement that has the same Sid."""
    new = list(statements)
    sids = {s.get("Sid") for s in new}
    kept = [s for s in (doc or {}).get("Statement", []) if s.get("Sid") not in sids]
    return document(kept + new)


def without_sid_prefix(doc: dict[str, Any] | None, sid_prefix: str) -> dict[str, Any]:
    """A copy of a bucket policy without the statements whose Sid starts with ``sid_prefix.``."""
    kept = [s for s in (doc or {}).get("Statement", []) if not str(s.get("Sid", "")).startswith(sid_prefix + ".")]
    return document(kept)


def sids(doc: dict[str, Any] | None) -> set[str]:
    return {str(s.get("Sid", "")) for s in (doc or {}).get("Statement", [])}
