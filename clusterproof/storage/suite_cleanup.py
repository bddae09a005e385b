"""Everything the storage suite ever made on one RGW, found by its marker and removed: ``clusterproof storage
cleanup --cluster X``.

The suite names what it makes after its tag ``cpt-<run hash>-<worker>`` (``fixtures/s3.py``): temporary users
``cptmp_cpt-..._<expiry>_<nonce>`` (with their keys), roles ``cptmp.cpt-....`` (with their policies), helper users
``cpt-<hash>-<worker>-<what>`` (the STS assumer) and buckets ``cp-<hash>-<worker>-<random>`` (with their objects).
Those patterns are all this selects: a customer's own users and buckets never match them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.cleanup import delete_bucket
from clusterproof.storage.client import AWS_ERRORS, answer_of
from clusterproof.storage.model import IssuerError
from clusterproof.storage.rgw_user import RgwUserIssuer
from clusterproof.storage.sts import StsIssuer

#: The customer scope of every suite customer (``cpt`` and ``cpt-...``).
SUITE_SCOPE = "cpt"
_TAG = r"[0-9a-f]{8}-(?:m|g[0-9]+)"
HELPER_USER_RE = re.compile(rf"^cpt-{_TAG}-[a-z0-9-]+$")
BUCKET_RE = re.compile(rf"^cp-{_TAG}-[a-z0-9-]+$")


@dataclass
class SuiteLeftovers:
    """What one sweep found and removed, and what it could not remove."""

    users: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    helper_users: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.users)} temporary user(s), {len(self.roles)} role(s), {len(self.helper_users)} helper user(s), "
                f"{len(self.buckets)} bucket(s)")


def remove_suite_leftovers(admin: RgwAdminSession) -> SuiteLeftovers:
    """Remove every temporary user (and key), role (and policy), helper user and bucket of the storage suite.

    Keeps going past errors; what could not be removed is in ``problems``, one line each.
    """
    out = SuiteLeftovers()
    for issuer, found in ((RgwUserIssuer(admin.endpoint, *admin.keys, region=admin.region), out.users),
                          (StsIssuer(admin.endpoint, *admin.keys, region=admin.region), out.roles)):
        try:
            found.extend(issuer.purge(SUITE_SCOPE))
        except IssuerError as e:
            found.extend(getattr(e, "deleted", []))
            out.problems.append(f"{issuer.kind} purge: {e}")
    try:
        helpers = [uid for uid in admin.user_ids() if HELPER_USER_RE.match(uid)]
    except IssuerError as e:
        helpers = []
        out.problems.append(f"list users: {e}")
    for uid in helpers:
        try:
            admin.delete_user(uid)
            out.helper_users.append(uid)
        except IssuerError as e:
            out.problems.append(str(e))
    try:
        buckets = [b["Name"] for b in admin.s3.list_buckets().get("Buckets", []) if BUCKET_RE.match(b["Name"])]
    except AWS_ERRORS as e:
        out.problems.append(f"list buckets: {answer_of(e)}")
        return out
    for name in buckets:
        problems = delete_bucket(admin.s3, name)
        (out.problems.extend(problems) if problems else out.buckets.append(name))
    return out


def count_suite_leftovers(admin: RgwAdminSession) -> dict[str, int]:
    """How many of each kind are on the RGW now (zero everywhere after a clean run or a cleanup)."""
    users = RgwUserIssuer(admin.endpoint, *admin.keys, region=admin.region).list_ids(SUITE_SCOPE)
    roles = StsIssuer(admin.endpoint, *admin.keys, region=admin.region).list_ids(SUITE_SCOPE)
    helpers = [uid for uid in admin.user_ids() if HELPER_USER_RE.match(uid)]
    buckets = [b["Name"] for b in admin.s3.list_buckets().get("Buckets", []) if BUCKET_RE.match(b["Name"])]
    return {"users": len(users), "roles": len(roles), "helper_users": len(helpers), "buckets": len(buckets)}
