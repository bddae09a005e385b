"""Cleanup: a storage run leaves zero temporary users, keys, policies, roles and test buckets behind, also when a
test fails midway. Proven with a nested pytest run (``cleanup_probe.py``) under its own name tag against the same
storage: afterwards nothing carrying that tag may exist.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from clusterproof.findings import Criterion
from clusterproof.inventory import StorageSettings
from clusterproof.storage import RgwAdminSession
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.suite_cleanup import bucket_prefix
from fixtures.s3 import TAG_ENV

pytestmark = pytest.mark.criterion(Criterion.STORAGE_CLEANUP)

PROBE = Path(__file__).with_name("cleanup_probe.py")


def test_s3_failed_test_leaves_nothing_behind(storage: StorageSettings, s3_admin: RgwAdminSession, pytestconfig: pytest.Config, tmp_path: Path) -> None:
    """One nested run for every issuer kind the inventory lists: per kind one passing and one failing test."""
    tag = f"cpt-{secrets.token_hex(4)}-c"
    notes = tmp_path / "probe.txt"
    env = {**os.environ, TAG_ENV: tag, "CP_S3_CLEANUP_PROBE_OUT": str(notes)}
    env.pop("PYTEST_XDIST_WORKER", None)
    cmd = [sys.executable, "-m", "pytest", str(PROBE), "--cluster", str(pytestconfig.getoption("--cluster")),
           "--no-report", "--reports-dir", str(tmp_path / "reports"), "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=pytestconfig.rootpath, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout[-3000:] + proc.stderr[-2000:]
    kinds = [k for k in ("rgw-user", "sts", "http") if k in storage.issuers]
    planned = f"{len(kinds)} failed, {len(kinds)} passed"
    assert proc.returncode == 1 and planned in proc.stdout, f"nested run did not end with {planned}:\n{out}"

    created = [line.split() for line in notes.read_text().splitlines()]
    buckets = {v for k, v in created if k == "bucket"}
    credentials = [v for k, v in created if k == "credential"]
    assert len(buckets) == 2 * len(kinds) and len(credentials) == 4 * len(kinds), (
        f"the probe created too little to prove anything: {created}")

    left = temp_ids(s3_admin, tag)
    helper_users = [u for u in s3_admin.user_ids() if u.startswith(tag + "-")]
    existing = {b["Name"] for b in s3_admin.s3.list_buckets().get("Buckets", [])}
    left_buckets = sorted(b for b in existing if b in buckets or b.startswith(bucket_prefix(tag)))
    assert not (left or helper_users or left_buckets), (
        f"after a run with failing tests these remain: temporary users/roles {left}, helper users "
        f"{helper_users}, buckets {left_buckets}\n--- nested run ---\n{out}")
