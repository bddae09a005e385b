"""Everything the storage suite ever made on one RGW, found by its marker and removed: ``clusterproof storage
cleanup --cluster X``.

The suite names what it makes after its tag ``cpt-<run hash>-<worker>`` (``fixtures/s3.py``): temporary users
``cptmp_cpt-..._<expiry>_<nonce>`` (with their keys), roles ``cptmp.cpt-....`` (with their policies), helper users
``cpt-<hash>-<worker>-<what>`` (the STS assumer) and buckets ``cp-<hash>-<worker>-<random>`` (with their objects).
Those patterns are all this selects: a customer's own users and buckets never match them. One tag alone (a run's
worker, what the fixtures sweep before and after) selects the customers of its scope, the helper users
``<tag>-...`` and the buckets ``cp-<tag without cpt->-...``; one run's sweep of worker g1 never reaches g10.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.cleanup import delete_bucket
from clusterproof.storage.client import AWS_ERRORS, answer_of
from clusterproof.storage.model import IssuerError
from clusterproof.storage.names import validate_scope
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


def bucket_prefix(tag: str) -> str:
    """The prefix of every bucket the suite makes under ``tag``: ``cpt-1a2b3c4d-g0`` -> ``cp-1a2b3c4d-g0-``."""
    return "cp-" + tag.removeprefix("cpt-") + "-"


@dataclass(frozen=True)
class _Selection:
    scope: str
    helper: Callable[[str], bool]
    bucket: Callable[[str], bool]


def _selection(tag: str | None) -> _Selection:
    if tag is None:
        return _Selection(SUITE_SCOPE, lambda uid: bool(HELPER_USER_RE.match(uid)), lambda b: bool(BUCKET_RE.match(b)))
    validate_scope(tag)  # never empty: a typo must not select the whole RGW
    prefix = bucket_prefix(tag)
    return _Selection(tag, lambda uid: uid.startswith(tag + "-"), lambda b: b.startswith(prefix))


def remove_suite_leftovers(admin: RgwAdminSession, stale_before: datetime | None = None, *,
                           tag: str | None = None) -> SuiteLeftovers:
    """Remove every temporary user (and key), role (and policy), helper user and bucket of the storage suite, or
    with ``tag`` of that tag alone (see the module's docstring), buckets that an RGW killed mid-create or
    mid-delete left dangling included.

    With ``stale_before`` only what an earlier run left, so that runs going on at the same time keep theirs:
    temporary users and roles that expired at or before it, buckets created before it, and the helper users of
    a tag that has such a bucket and none newer. Keeps going past errors; what could not be removed is in
    ``problems``, one line each.

    Raises:
        ValueError: ``tag`` is not a valid customer scope, or given with ``stale_before`` (a tag is one live run).
    """
    if tag is not None and stale_before is not None:
        raise ValueError("remove_suite_leftovers: stale_before selects earlier runs, a tag one run; give one")
    chosen = _selection(tag)
    out = SuiteLeftovers()
    for issuer, found in ((RgwUserIssuer(admin.endpoint, *admin.keys, region=admin.region), out.users),
                          (StsIssuer(admin.endpoint, *admin.keys, region=admin.region), out.roles)):
        try:
            found.extend(issuer.purge(chosen.scope, expired_before=stale_before))
        except IssuerError as e:
            found.extend(getattr(e, "deleted", []))
            out.problems.append(f"{issuer.kind} purge: {e}")
    try:
        listed = [b for b in admin.s3.list_buckets().get("Buckets", []) if chosen.bucket(b["Name"])]
    except AWS_ERRORS as e:
        out.problems.append(f"list buckets: {answer_of(e)}")
        return out
    stale = [b["Name"] for b in listed if stale_before is None or _created_before(b, stale_before)]
    try:
        helpers = [uid for uid in admin.user_ids() if chosen.helper(uid)]
    except IssuerError as e:
        helpers = []
        out.problems.append(f"list users: {e}")
    if stale_before is not None:
        fresh_tags = {_tag_of(b["Name"]) for b in listed if b["Name"] not in stale}
        stale_tags = {_tag_of(name) for name in stale} - fresh_tags
        helpers = [uid for uid in helpers if _tag_of(uid) in stale_tags]
    for uid in helpers:
        try:
            admin.delete_user(uid)
            out.helper_users.append(uid)
        except IssuerError as e:
            out.problems.append(str(e))
    for name in stale:
        problems = delete_bucket(admin.s3, name)
        (out.problems.extend(problems) if problems else out.buckets.append(name))
    out.problems.extend(_drop_dangling(admin, out.buckets))
    return out


def _created_before(bucket: dict[str, Any], cutoff: datetime) -> bool:
    created = bucket.get("CreationDate")
    return isinstance(created, datetime) and created < cutoff


def _tag_of(name: str) -> str:
    """The run hash and worker a suite name carries: ``cp-1a2b3c4d-g0-xyz`` (bucket) and ``cpt-1a2b3c4d-g0-assumer``
    (helper user) -> ``1a2b3c4d-g0``."""
    return "-".join(name.split("-")[1:3])


def _drop_dangling(admin: RgwAdminSession, deleted: list[str]) -> list[str]:
    """Buckets still listed after their deletion went through or said "no such bucket" (an RGW killed while it
    made or deleted them leaves such a name: its instance or index shards gone, or its entry point gone with the
    owner's link left) are removed through the admin API (:meth:`RgwAdminSession.force_remove_bucket`), or, with
    no metadata left at all, made again by their owner and deleted. Moves a bucket that stays listed from
    ``deleted`` to the problems returned."""
    try:
        still = {b["Name"] for b in admin.s3.list_buckets().get("Buckets", [])} & set(deleted)
    except AWS_ERRORS as e:
        return [f"list buckets: {answer_of(e)}"]
    problems = []
    for name in sorted(still):
        deleted.remove(name)
        try:
            if not admin.force_remove_bucket(name):
                # no entry point at all: only the owner's link to the name is left, and only an owner's create
                # (which links real metadata to it) and delete remove that
                admin.s3.create_bucket(Bucket=name)
                problems.extend(delete_bucket(admin.s3, name))
        except IssuerError as e:
            problems.append(f"{name}: listed after its deletion, and the admin API could not remove it: {e}")
            continue
        except AWS_ERRORS as e:
            problems.append(f"{name}: listed after its deletion, with no metadata left; making it again to delete it: "
                            f"{answer_of(e)}")
            continue
        try:
            if name in {b["Name"] for b in admin.s3.list_buckets().get("Buckets", [])}:
                problems.append(f"{name}: still listed after it was deleted through S3 and the admin API")
            else:
                deleted.append(name)
        except AWS_ERRORS as e:
            problems.append(f"list buckets: {answer_of(e)}")
    return problems


def count_suite_leftovers(admin: RgwAdminSession) -> dict[str, int]:
    """How many of each kind are on the RGW now (zero everywhere after a clean run or a cleanup)."""
    users = RgwUserIssuer(admin.endpoint, *admin.keys, region=admin.region).list_ids(SUITE_SCOPE)
    roles = StsIssuer(admin.endpoint, *admin.keys, region=admin.region).list_ids(SUITE_SCOPE)
    helpers = [uid for uid in admin.user_ids() if HELPER_USER_RE.match(uid)]
    buckets = [b["Name"] for b in admin.s3.list_buckets().get("Buckets", []) if BUCKET_RE.match(b["Name"])]
    return {"users": len(users), "roles": len(roles), "helper_users": len(helpers), "buckets": len(buckets)}
