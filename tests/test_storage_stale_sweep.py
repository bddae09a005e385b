"""What the storage suite removes at start: an earlier run's leftovers, never a run going on at the same time.

On a real RGW: a tag whose bucket was made before the cut-off loses its bucket (with objects), its helper user and
its temporary users that expired before it; a tag made after the cut-off keeps everything, and so does a live
credential of the old tag. ``purge(expired_before=...)`` selects by the expiry written in the name.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import RgwAdminSession, RgwUserIssuer
from clusterproof.storage.cleanup import delete_bucket
from clusterproof.storage.suite_cleanup import remove_suite_leftovers
from tests.rgw_fixture import rgw, rgw_admin  # noqa: F401

pytestmark = pytest.mark.needs_rgw


@pytest.fixture
def issuer(rgw: RgwInfo) -> RgwUserIssuer:  # noqa: F811
    """Yields: an RgwUserIssuer on the test RGW. Scope: function."""
    return RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)


def _buckets(admin: RgwAdminSession) -> set[str]:
    return {b["Name"] for b in admin.s3.list_buckets().get("Buckets", [])}


def test_purge_expired_before_takes_only_what_expired(issuer: RgwUserIssuer, rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    scope = f"cpt-{secrets.token_hex(4)}-g3"
    bucket = f"cp-{scope.removeprefix('cpt-')}-b"
    rgw_admin.s3.create_bucket(Bucket=bucket)
    try:
        short = issuer.issue(f"{scope}-a", bucket, "a/", 60)
        long = issuer.issue(f"{scope}-b", bucket, "b/", 3600)
        assert issuer.purge(scope, expired_before=short.expires_at - timedelta(seconds=1)) == []
        assert issuer.purge(scope, expired_before=short.expires_at + timedelta(seconds=1)) == [short.id]
        assert issuer.list_ids(scope) == [long.id]
    finally:
        issuer.purge(scope)
        delete_bucket(rgw_admin.s3, bucket)


@pytest.fixture
def two_runs(issuer: RgwUserIssuer, rgw_admin: RgwAdminSession) -> Iterator[dict[str, str]]:  # noqa: F811
    """Yields: names of an old run (made before ``cutoff``) and a new one (after it), each with a bucket holding an
    object, a helper user and temporary users. Scope: function. Cleans up: whatever the test left of both."""
    old, new = f"{secrets.token_hex(4)}-g1", f"{secrets.token_hex(4)}-g1"
    made = {"old_bucket": f"cp-{old}-x", "new_bucket": f"cp-{new}-x",
            "old_helper": f"cpt-{old}-assumer", "new_helper": f"cpt-{new}-assumer"}
    try:
        rgw_admin.s3.create_bucket(Bucket=made["old_bucket"])
        rgw_admin.s3.put_object(Bucket=made["old_bucket"], Key="k", Body=b"x")
        rgw_admin.create_user(made["old_helper"], "old helper")
        made["old_expired"] = issuer.issue(f"cpt-{old}-c", made["old_bucket"], "c/", 1).id
        made["old_live"] = issuer.issue(f"cpt-{old}-d", made["old_bucket"], "d/", 3600).id
        time.sleep(2.2)  # creation dates have whole seconds
        made["cutoff"] = datetime.now(UTC).isoformat()
        time.sleep(1.2)
        rgw_admin.s3.create_bucket(Bucket=made["new_bucket"])
        rgw_admin.create_user(made["new_helper"], "new helper")
        made["new_expired"] = issuer.issue(f"cpt-{new}-c", made["new_bucket"], "c/", 1).id
        yield made
    finally:
        issuer.purge(f"cpt-{old}")
        issuer.purge(f"cpt-{new}")
        for uid in (made["old_helper"], made["new_helper"]):
            rgw_admin.delete_user(uid)
        for b in (made["old_bucket"], made["new_bucket"]):
            delete_bucket(rgw_admin.s3, b)


def test_start_sweep_removes_the_earlier_run_and_keeps_the_current_one(
        two_runs: dict[str, str], issuer: RgwUserIssuer, rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    cutoff = datetime.fromisoformat(two_runs["cutoff"])
    done = remove_suite_leftovers(rgw_admin, stale_before=cutoff)
    assert done.problems == []
    assert two_runs["old_bucket"] in done.buckets and two_runs["new_bucket"] not in done.buckets
    assert two_runs["old_helper"] in done.helper_users and two_runs["new_helper"] not in done.helper_users
    # expired before the cut-off: removed; the new run's expired one expired after it, and live ones stay
    assert two_runs["old_expired"] in done.users
    assert two_runs["old_live"] not in done.users and two_runs["new_expired"] not in done.users
    left = _buckets(rgw_admin)
    assert two_runs["old_bucket"] not in left and two_runs["new_bucket"] in left
    ids = issuer.list_ids("cpt")
    assert two_runs["old_live"] in ids and two_runs["new_expired"] in ids and two_runs["old_expired"] not in ids
    assert rgw_admin.user_keys(two_runs["new_helper"]) is not None


def _break_instance(rgw: RgwInfo, admin: RgwAdminSession, name: str) -> None:  # noqa: F811
    """Remove the bucket's instance metadata (its entry point stays)."""
    listing = subprocess.run(["radosgw-admin", "-c", str(rgw.ceph_conf), "metadata", "list", "bucket.instance"],
                             capture_output=True, text=True, check=True, timeout=60)
    instance = next(i for i in json.loads(listing.stdout) if i.startswith(name + ":"))
    subprocess.run(["radosgw-admin", "-c", str(rgw.ceph_conf), "metadata", "rm", f"bucket.instance:{instance}"],
                   capture_output=True, text=True, check=True, timeout=60)


def _break_index(rgw: RgwInfo, admin: RgwAdminSession, name: str) -> None:  # noqa: F811
    """Remove the bucket's index shards from RADOS (its metadata stays)."""
    bucket_id = admin.rgw.request("get", f"/admin/metadata/bucket?format=json&key={name}")["data"]["bucket"]["bucket_id"]
    rados = ["rados", "-c", str(rgw.ceph_conf), "-p", "default.rgw.buckets.index"]
    shards = [o for o in subprocess.run([*rados, "ls"], capture_output=True, text=True, check=True, timeout=60).stdout.split()
              if o.startswith(f".dir.{bucket_id}")]
    assert shards
    for shard in shards:
        subprocess.run([*rados, "rm", shard], capture_output=True, text=True, check=True, timeout=60)


def _break_entry_point(rgw: RgwInfo, admin: RgwAdminSession, name: str) -> None:  # noqa: F811
    """Remove the bucket's entry point object from RADOS (the owner's link to the name stays): what a radosgw
    killed between the two steps of a deletion leaves (reproduced by the dead-RGW test)."""
    subprocess.run(["rados", "-c", str(rgw.ceph_conf), "-p", "default.rgw.meta", "-N", "root", "rm", name],
                   capture_output=True, text=True, check=True, timeout=60)


@pytest.mark.parametrize("damage", [_break_instance, _break_index, _break_entry_point],
                         ids=["instance-gone", "index-gone", "entry-point-gone"])
def test_a_bucket_rgw_lists_but_cannot_find_is_removed(damage: Callable[..., None], rgw: RgwInfo,  # noqa: F811
                                                       rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    """The states a radosgw killed mid-create or mid-delete leaves (seen in CI after the dead-RGW test): the owner
    lists the bucket, S3 cannot delete it. Made here by removing the bucket's instance metadata or its index
    shards; the cleanup must remove the name, not count it removed while it stays listed."""
    name = f"cp-{secrets.token_hex(4)}-g2-dangling"
    rgw_admin.s3.create_bucket(Bucket=name)
    rgw_admin.s3.put_object(Bucket=name, Key="k", Body=b"x")
    damage(rgw, rgw_admin, name)
    assert name in _buckets(rgw_admin) and delete_bucket(rgw_admin.s3, name) == []  # "gone", yet listed
    assert name in _buckets(rgw_admin)
    done = remove_suite_leftovers(rgw_admin)
    assert done.problems == [] and name in done.buckets
    assert name not in _buckets(rgw_admin)
    assert rgw_admin.force_remove_bucket(name) is False  # nothing left to remove
