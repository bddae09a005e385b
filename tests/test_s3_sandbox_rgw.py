"""The sandbox RGW: up, secrets kept to the owner, reuse, refusal of a taken port, and stopping only our daemons."""

from __future__ import annotations

import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from clusterproof.errors import SandboxError
from clusterproof.inventory import parse_inventory
from clusterproof.sandbox import rgw as sandbox_rgw
from tests.rgw_fixture import free_port, rgw  # noqa: F401


def test_rgw_sandbox_up_with_owner_only_secrets_file(rgw: sandbox_rgw.RgwInfo) -> None:  # noqa: F811
    st = sandbox_rgw.status(rgw.state_dir)
    assert st.up and st.endpoint == rgw.endpoint and all(st.daemons.values()), str(st)
    mode = stat.S_IMODE(rgw.secrets_file.stat().st_mode)
    assert mode == 0o600, f"{rgw.secrets_file} has mode {mode:o}"
    env = sandbox_rgw.read_secrets_file(rgw.secrets_file)
    assert env == {"CP_RGW_ADMIN_ACCESS_KEY": rgw.admin_access_key, "CP_RGW_ADMIN_SECRET_KEY": rgw.admin_secret_key}
    assert rgw.admin_secret_key not in repr(rgw)


def test_rgw_sandbox_inventory_section_names_env_vars_only(rgw: sandbox_rgw.RgwInfo) -> None:  # noqa: F811
    section = sandbox_rgw.storage_inventory_section(rgw, http_base_url="http://127.0.0.1:7499")
    assert rgw.admin_secret_key not in str(section) and rgw.admin_access_key not in str(section)
    inv = parse_inventory({"nodes": [{"name": "n1", "host": "127.0.0.1"}], "ssh": {"strict_host_keys": False},
                           "storage": section})
    assert inv.storage is not None and inv.storage.issuers == ("rgw-user", "sts", "http")
    assert inv.storage.admin_secret_key_env == "CP_RGW_ADMIN_SECRET_KEY"
    assert sandbox_rgw.storage_inventory_section(rgw)["issuers"] == ["rgw-user", "sts"]


def test_rgw_sandbox_start_reuses_a_healthy_instance(rgw: sandbox_rgw.RgwInfo) -> None:  # noqa: F811
    again = sandbox_rgw.start(rgw.state_dir)
    assert again.endpoint == rgw.endpoint and again.pids == rgw.pids
    assert again.admin_secret_key == rgw.admin_secret_key


def test_rgw_sandbox_refuses_a_taken_port_and_starts_nothing(rgw: sandbox_rgw.RgwInfo) -> None:  # noqa: F811
    state = Path(tempfile.mkdtemp(prefix="cp-rgw-taken-"))
    port = int(rgw.endpoint.rsplit(":", 1)[1])
    with pytest.raises(SandboxError, match=f"127.0.0.1:{port} is already in use"):
        sandbox_rgw.start(state, port=port, mon_port=free_port())
    assert not (state / "pids").exists() and not sandbox_rgw.status(state).up
    state.rmdir()


def test_rgw_sandbox_stop_kills_only_processes_running_our_conf(tmp_path: Path) -> None:
    """A recorded pid that now belongs to someone else (pid reuse) must survive stop()."""
    state = Path(tempfile.mkdtemp(prefix="cp-rgw-foreign-"))
    (state / ".clusterproof-rgw").write_text("test\n")
    (state / "pids").mkdir()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (state / "pids" / "rgw").write_text(f"{stranger.pid}\n")
        assert sandbox_rgw.stop(state) == []
        assert stranger.poll() is None, "stop() killed a process that was not ours"
        assert not state.exists(), "stop() should delete the state directory it marked"
    finally:
        stranger.kill()
        stranger.wait()


def test_rgw_sandbox_full_start_and_stop_cycle() -> None:
    state = Path(tempfile.mkdtemp(prefix="cp-rgw-cycle-"))
    info = sandbox_rgw.start(state, port=free_port(), mon_port=free_port(), sts_min_duration=5)
    lines = sandbox_rgw.stop(state)
    assert sorted(line.split()[0] for line in lines) == ["mon", "osd", "rgw"], lines
    assert not sandbox_rgw.status(state).up and not state.exists()
    for pid in info.pids.values():  # gone, or a zombie waiting for pid 1 to reap it
        stat_file = Path(f"/proc/{pid}/stat")
        assert not stat_file.exists() or stat_file.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
