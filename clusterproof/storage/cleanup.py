"""What the storage sweeps and checks share: the temporary users and roles of a customer scope (the customer id and
``<scope>-...``, see ``names.customer_in_scope``), whether one still carries its grant (``grant_state`` tells an
orphan without its policy from one that has it or is gone), and deleting a bucket with everything in it. The sweep
itself is ``suite_cleanup.remove_suite_leftovers``.
"""

from __future__ import annotations

from typing import Any, Literal

from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.client import AWS_ERRORS, answer_of
from clusterproof.storage.model import IssuerError
from clusterproof.storage.names import customer_in_scope, decode_role_name, decode_uid, validate_scope

GrantState = Literal["granted", "no-grant", "gone"]


def temp_ids(admin: RgwAdminSession, scope: str) -> list[str]:
    """Temporary users and roles whose customer is ``scope`` or ``scope-...`` (never ``scope0...``).

    Raises:
        ValueError: ``scope`` is not a valid customer id.
        IssuerError: users or roles could not be listed.
    """
    validate_scope(scope)
    users = [u for u in admin.user_ids() if (n := decode_uid(u)) and customer_in_scope(n.customer, scope)]
    roles = [r for r in admin.role_names() if (n := decode_role_name(r)) and customer_in_scope(n.customer, scope)]
    return users + roles


def grant_state(admin: RgwAdminSession, ident: str) -> GrantState:
    """Whether the temporary user or role ``ident`` carries its policy.

    RGW 16.2 answers NoSuchEntity both for a principal without policies and for one that does not exist, so a
    not-found answer is followed by an existence check. Only that definite answer decides; anything else (an
    outage, AccessDenied, an unreadable answer) is raised, never guessed.

    Returns:
        ``granted`` (it has at least one policy), ``no-grant`` (it exists without one: an orphan) or ``gone``.
    Raises:
        ValueError: ``ident`` is not a temporary user's uid or role's name.
        IssuerError: RGW gave no definite answer (the message has it).
    """
    is_role = decode_role_name(ident) is not None
    if not is_role and decode_uid(ident) is None:
        raise ValueError(f"{ident!r}: not a temporary user or role of this scheme")
    try:
        if is_role:
            names = admin.iam.list_role_policies(RoleName=ident).get("PolicyNames")
        else:
            names = admin.iam.list_user_policies(UserName=ident).get("PolicyNames")
    except AWS_ERRORS as e:
        answer = answer_of(e)
        if not answer.not_found:
            raise IssuerError(f"{admin.endpoint}: list policies of {ident}: {answer}") from None
        return "no-grant" if _exists(admin, ident, is_role) else "gone"
    return "granted" if names else ("no-grant" if _exists(admin, ident, is_role) else "gone")


def _exists(admin: RgwAdminSession, ident: str, is_role: bool) -> bool:
    if not is_role:
        return admin.user_display_name(ident) is not None
    try:
        admin.iam.get_role(RoleName=ident)
    except AWS_ERRORS as e:
        answer = answer_of(e)
        if answer.not_found:
            return False
        raise IssuerError(f"{admin.endpoint}: get role {ident}: {answer}") from None
    return True


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
