"""The storage area against a real Ceph RGW that fails: missing admin keys fail the run (not 623 silent skips),
a radosgw killed mid-suite is one line and a non-zero exit, and after it returns ``clusterproof storage cleanup``
leaves zero temporary users, roles, helper users and buckets.

Own sandbox (2 nodes + RGW) on 192.168.161.0/24, prefix c16s_, ports 21601-21603.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from clusterproof.inventory import load_inventory, read_env_file
from clusterproof.sandbox import rgw
from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.suite_cleanup import count_suite_leftovers
from tests.own_sandbox import own_sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-i16-rgw")

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.needs_rgw,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root"),
]


@pytest.fixture(scope="module")
def inventory() -> Iterator[Path]:
    """Yields: the inventory of a 2-node sandbox with RGW. Scope: module. Cleans up: the whole sandbox."""
    with own_sandbox(STATE_DIR, 2, subnet="192.168.161", prefix="c16s_", rgw_port=21601, mon_port=21602, service_port=21603) as inv:
        yield inv


def admin_of(inv_path: Path) -> RgwAdminSession:
    inv = load_inventory(inv_path)
    assert inv.storage is not None and inv.env_file is not None
    env = read_env_file(inv.env_file)
    return RgwAdminSession(inv.storage.endpoint, env[str(inv.storage.admin_access_key_env)], env[str(inv.storage.admin_secret_key_env)])


def pytest_cmd(inv: Path, tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites/storage", "--cluster", str(inv), "--reports-dir", str(tmp_path),
            "-p", "no:cacheprovider", "-q", "-rfE", "--no-report", *args]


def test_missing_storage_keys_fail_the_run_once(inventory: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load(inventory.read_text())
    doc.pop("env_file")
    doc["storage"].update(admin_access_key_env="CP_I16_UNSET_ACCESS", admin_secret_key_env="CP_I16_UNSET_SECRET")
    inv = tmp_path / "nokeys.yaml"
    inv.write_text(yaml.safe_dump(doc))
    res = subprocess.run(pytest_cmd(inv, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stdout[-3000:]
    # once, not counting pytest's own short summary line ("FAILED ... - <message>", shown when the width allows)
    said = [ln for ln in res.stdout.splitlines() if not ln.startswith("FAILED ")
            and "storage preflight: admin keys not in the environment ($CP_I16_UNSET_ACCESS, $CP_I16_UNSET_SECRET)" in ln]
    assert len(said) == 1, res.stdout[-4000:]
    assert "1 failed" in res.stdout and " passed" not in res.stdout, res.stdout[-2000:]


def test_dead_rgw_is_one_line_and_cleanup_leaves_nothing(inventory: Path, tmp_path: Path) -> None:
    admin = admin_of(inventory)
    endpoint = admin.endpoint
    child = subprocess.Popen(pytest_cmd(inventory, tmp_path, "suites/storage/test_access_matrix.py"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:  # kill RGW once the suite has made things
            if count_suite_leftovers(admin)["users"] + count_suite_leftovers(admin)["roles"] > 0:
                break
            time.sleep(0.5)
        print(rgw.kill_radosgw(STATE_DIR / "rgw"))
        out, _ = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
        print(rgw.start_radosgw(STATE_DIR / "rgw"))
    assert child.returncode == 1, out[-4000:]
    # the death lands in a test's setup or in its call, depending on timing: one failed or one error, never more
    assert ("1 failed" in out or "1 error" in out) and f"\nRGW at {endpoint} stopped answering during test_s3_access_matrix[" in out, out[-4000:]
    # the failure (or setup error), and the one cleanup warning naming it; pytest's short summary line repeats a
    # failure's message, not an error's, so it is not counted
    said = [ln for ln in out.splitlines() if "stopped answering" in ln and not ln.startswith(("FAILED ", "ERROR "))]
    assert len(said) == 2, out[-4000:]
    assert "Traceback" not in out and out.count("EndpointConnectionError") <= 1, out[-4000:]

    before = count_suite_leftovers(admin)
    res = subprocess.run([sys.executable, "-m", "clusterproof.cli", "storage", "cleanup", "--cluster", str(inventory)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "left: 0 users, 0 roles, 0 helper users, 0 buckets" in res.stdout, res.stdout
    assert count_suite_leftovers(admin) == {"users": 0, "roles": 0, "helper_users": 0, "buckets": 0}
    print(f"left behind by the killed run: {before}; after cleanup: none")
