"""A broken cluster file: one short message per problem, once per run, for every selection of suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROKEN = "name: x\nnodes:\n  - {name: a, host: 1.2.3.4, bogus: 1}\nssh: {connect_timeout_s: -1}\n"


@pytest.mark.parametrize("selection", [["suites", "-k", "reachable"], ["suites/storage", "-n", "2"]])
def test_broken_inventory_is_reported_once_without_traceback(tmp_path: Path, selection: list[str]) -> None:
    inv = tmp_path / "broken.yaml"
    inv.write_text(BROKEN)
    res = subprocess.run([sys.executable, "-m", "pytest", *selection, "--cluster", str(inv), "-p", "no:cacheprovider", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 4, out[-3000:]  # pytest's usage error
    assert "Traceback" not in out and "pluggy" not in out, out[-3000:]
    assert out.count("nodes[0].bogus: unknown key") == 1 and out.count("ssh.connect_timeout_s: must be >= 0.1") == 1
    assert len(out.strip().splitlines()) <= 6, out
