"""The OpenSSH config written from an inventory: ``ssh -G`` (OpenSSH's own resolver, no network) shows what
each host really gets, so the jump host must not proxy through itself and the nodes must go through it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clusterproof.inventory import parse_inventory
from clusterproof.nodes.openssh_config import openssh_config

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")


def _effective(config: Path, host: str) -> dict[str, str]:
    out = subprocess.run(["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_jump_host_is_reached_directly_and_nodes_through_it(tmp_path: Path) -> None:
    inv = parse_inventory({
        "name": "hand-built",
        "nodes": [{"name": "gpu01", "host": "10.0.0.11", "port": 2222}, {"name": "gpu02", "host": "10.0.0.12", "port": 2222}],
        "ssh": {"user": "ops", "key_file": str(tmp_path / "id"), "known_hosts": str(tmp_path / "kh"),
                "jump_host": {"host": "bastion.example.com", "port": 2200}},
    }, "hand-built.yaml")
    config = tmp_path / "ssh_config"
    config.write_text(openssh_config(inv))
    bastion = _effective(config, "bastion.example.com")
    assert bastion.get("proxyjump", "none") == "none" and bastion["port"] == "2200" and bastion["user"] == "ops"
    node = _effective(config, "gpu01")
    assert node["hostname"] == "10.0.0.11" and node["port"] == "2222"
    assert node["proxyjump"] == "ops@bastion.example.com:2200"
    assert node["stricthostkeychecking"] == "true" and node["userknownhostsfile"] == str(tmp_path / "kh")
    assert node["identityfile"] == str(tmp_path / "id")
