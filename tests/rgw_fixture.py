"""A real single-node Ceph RGW for the library's integration tests, started once per test session (per xdist
worker) on free ports in its own /tmp directory, and stopped at the end.

Test modules import the fixtures explicitly: ``from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401``
(and ``foreign_owner`` where a bucket must belong to someone other than the admin).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clusterproof.sandbox import rgw as sandbox_rgw
from clusterproof.storage import RgwAdminSession
from clusterproof.storage.cleanup import delete_bucket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def rgw() -> Iterator[sandbox_rgw.RgwInfo]:
    """Yields: a running RGW (STS minimum session 5 s). Scope: session.
    Cleans up: kills its daemons and deletes its directory. Skips when: the Ceph binaries are not installed."""
    if shutil.which("radosgw") is None or shutil.which("ceph-mon") is None:
        pytest.skip("Ceph is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)")
    # A short path under /tmp: Ceph's admin sockets are Unix sockets (108-byte path limit).
    state = Path(tempfile.mkdtemp(prefix="cp-rgw-test-"))
    try:
        info = sandbox_rgw.start(state, port=free_port(), mon_port=free_port(), sts_min_duration=5)
    except BaseException:
        shutil.rmtree(state, ignore_errors=True)
        raise
    yield info
    sandbox_rgw.stop(state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def rgw_admin(rgw: sandbox_rgw.RgwInfo) -> RgwAdminSession:
    """Yields: an admin session on the test RGW. Scope: session."""
    return RgwAdminSession(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)


@pytest.fixture
def rgw_bucket(rgw_admin: RgwAdminSession) -> Iterator[Callable[[], str]]:
    """Yields: ``new_bucket()`` creating admin-owned buckets. Scope: function.
    Cleans up: deletes them with every object; a failure to do so fails the test."""
    created: list[str] = []

    def new_bucket() -> str:
        name = f"cpt-{secrets.token_hex(6)}"
        rgw_admin.s3.create_bucket(Bucket=name)
        created.append(name)
        return name

    yield new_bucket
    problems = [p for name in created for p in delete_bucket(rgw_admin.s3, name)]
    assert not problems, "bucket cleanup failed:\n" + "\n".join(problems)


@pytest.fixture
def foreign_owner(rgw_admin: RgwAdminSession) -> Iterator[tuple[str, str]]:
    """Yields: (uid, access key) of a user (not the admin) that owns one bucket, named like the uid.
    Removing that key (``rgw_admin.rgw.remove_key``) makes every rewrite of the bucket's policy fail: a real way
    to make a deletion with bucket-policy grants fail. Scope: function.
    Cleans up: the user with its bucket and objects."""
    uid = f"cpt-owner-{secrets.token_hex(4)}"
    user = rgw_admin.rgw.create_user(uid=uid, display_name=uid, generate_key=True)
    key = user["keys"][0]
    rgw_admin.client("s3", key["access_key"], key["secret_key"]).create_bucket(Bucket=uid)
    yield uid, key["access_key"]
    rgw_admin.rgw.remove_user(uid=uid, purge_data=True)
