"""Finding and removing what tests leave on an RGW: temporary users and roles by customer prefix, helper users and
buckets by name prefix. Every function keeps going past errors and returns the problems it met.
"""

from __future__ import annotations

from typing import Any

from clusterproof.s3.admin import RgwAdminSession
from clusterproof.s3.client import AWS_ERRORS, answer_of
from clusterproof.s3.model import IssuerError
from clusterproof.s3.names import decode_role_name, decode_uid
from clusterproof.s3.rgw_user import RgwUserIssuer
from clusterproof.s3.sts import StsIssuer


def temp_ids(admin: RgwAdminSession, customer_prefix: str) -> list[str]:
    """Temporary users and roles whose customer id starts with ``customer_prefix``."""
    users = [u for u in admin.user_ids() if (n := decode_uid(u)) and n.customer.startswith(customer_prefix)]
    roles = [r for r in admin.role_names() if (n := decode_role_name(r)) and n.customer.startswith(customer_prefix)]
    return users + roles


def delete_bucket(s3: Any, bucket: str) -> list[str]:
    """Abort uploads, delete every object (the owner may delete what temporary users own) and the bucket.

    Returns:
        The problems met; a bucket that does not exist is not one.
    """
    problems: list[str] = []
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                try:
                    s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                except AWS_ERRORS as e:
                    problems.append(f"{bucket}: abort upload of {up['Key']}: {answer_of(e)}")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                problems.extend(f"{bucket}: delete {e.get('Key')}: {e.get('Code')}" for e in resp.get("Errors", []))
        s3.delete_bucket(Bucket=bucket)
    except AWS_ERRORS as e:
        if not answer_of(e).not_found:
            problems.append(f"{bucket}: {answer_of(e)}")
    return problems


def sweep(admin: RgwAdminSession, customer_prefix: str, bucket_prefix: str) -> list[str]:
    """Delete the temporary users and roles whose customer starts with ``customer_prefix``, the users whose uid
    starts with ``customer_prefix + "-"`` (helpers such as the sts assumer), and the buckets whose name starts
    with ``bucket_prefix`` together with their objects.

    Returns:
        The problems met (the sweep keeps going).
    Raises:
        ValueError: an empty prefix (a typo must not wipe the RGW).
    """
    if not customer_prefix or not bucket_prefix:
        raise ValueError("sweep needs non-empty customer and bucket prefixes")
    problems: list[str] = []
    for issuer in (RgwUserIssuer(admin.endpoint, *admin.keys, region=admin.region),
                   StsIssuer(admin.endpoint, *admin.keys, region=admin.region)):
        try:
            issuer.purge(customer_prefix)
        except IssuerError as e:
            problems.append(f"{issuer.kind} purge: {e}")
    try:
        for uid in list(admin.user_ids()):
            if uid.startswith(customer_prefix + "-"):
                admin.delete_user(uid)
    except IssuerError as e:
        problems.append(str(e))
    try:
        buckets = [b["Name"] for b in admin.s3.list_buckets().get("Buckets", [])]
    except AWS_ERRORS as e:
        return problems + [f"list buckets: {answer_of(e)}"]
    for name in buckets:
        if name.startswith(bucket_prefix):
            problems.extend(delete_bucket(admin.s3, name))
    return problems
