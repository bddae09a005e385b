"""N = 32: the node and network suites, unchanged, against a 32-node sandbox with its default inventory: every
collective, the default thresholds (1M is checked) and a sweep cut to 256K-1M to keep it short; afterwards nothing
of any run is left on any node."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from clusterproof.sandbox import cluster
from tests.own_sandbox import own_sandbox

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = Path("/tmp/cp-32-sandbox")

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.needs_sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (network namespaces, one sshd per node)"),
]


@pytest.fixture(scope="module")
def inventory_32(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Yields: the default inventory of a 32-node sandbox (nodes only, no RGW), its sweep cut to 256K-1M.
    Scope: module. Cleans up: the whole sandbox."""
    with own_sandbox(STATE_DIR, 32, with_storage=False, subnet="192.168.87", prefix="cpw_") as inv:
        doc = yaml.safe_load(inv.read_text())
        doc["nccl_tests"]["sweep"].update(min_bytes="256K", max_bytes="1M")  # every collective and threshold stays
        out = tmp_path_factory.mktemp("inv32") / "inventory.yaml"
        out.write_text(yaml.safe_dump(doc))
        yield out


def test_suites_pass_on_32_nodes(inventory_32: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pytest", "suites/nodes", "suites/network", "--cluster", str(inventory_32),
           "--reports-dir", str(tmp_path), "-p", "no:cacheprovider", "-q", "-n", "2"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    df = pd.read_parquet(tmp_path / "latest" / "results.parquet")
    assert sorted(set(df["n_nodes"])) == [2, 32]
    assert set(df[df["n_nodes"] == 32]["collective"]) == set(cluster.COLLECTIVES)
    assert (df[df["n_nodes"] == 32]["n_ranks"] == 32).all() and (df["wrong"] == 0).all()
    assert len(pd.read_csv(tmp_path / "latest" / "nodes.csv")) == 32
    from clusterproof.inventory import load_inventory
    from clusterproof.nodes.ssh import SshPool

    with SshPool.from_inventory(load_inventory(inventory_32)) as pool:
        left = {n: r.stdout.strip() for n, r in pool.run_all("ls -d /tmp/clusterproof/* /tmp/ompi.* 2>/dev/null; true").items()
                if not isinstance(r, Exception)}
    assert left == {f"node{i:02d}": "" for i in range(1, 33)}, {n: v for n, v in left.items() if v}
