"""One verdict, end to end without root: a nested pytest run of a tiny suite with the real fixture plugins, for a
healthy run and for each way a run can go red. The pytest exit status, ``scorecard.json``, the failing criterion,
``junit.xml`` and ``clusterproof report build`` on the saved run must all agree; a secret minted in an xdist worker
and leaked raw into the report fails the run, and the rebuild finds it too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).parent / "data" / "one_verdict" / "probe_suite.py"
CONFTEST = 'pytest_plugins = ["fixtures.inventory", "fixtures.findings", "fixtures.report"]\n'
INVENTORY = "name: probe\nnodes:\n  - {name: node01, host: 192.0.2.1}\n  - {name: node02, host: 192.0.2.2}\n"

pytestmark = pytest.mark.slow


@dataclass
class Run:
    rc: int
    out: str
    run_dir: Path

    @property
    def scorecard(self) -> dict:  # type: ignore[type-arg]
        return json.loads((self.run_dir / "scorecard.json").read_text())  # type: ignore[no-any-return]

    def failing(self) -> list[str]:
        return [c["id"] for c in self.scorecard["scorecard"] if c["status"] == "fail"]

    def junit(self) -> tuple[int, list[str]]:
        root = ET.parse(self.run_dir / "junit.xml").getroot()
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        assert suite is not None
        names = [tc.get("name", "") for tc in suite.findall("testcase") if tc.find("failure") is not None
                 and tc.get("classname") == "clusterproof.scorecard"]
        return int(suite.get("failures", "0")) + int(suite.get("errors", "0")), names


def run_probe(tmp_path: Path, scenario: str, *args: str) -> Run:
    work = tmp_path / scenario
    work.mkdir()
    shutil.copy(PROBE, work / "test_probe.py")
    (work / "conftest.py").write_text(CONFTEST)
    (work / "known_hosts").write_text("")
    (work / "cluster.yaml").write_text(INVENTORY + f"ssh: {{known_hosts: {work / 'known_hosts'}}}\n")
    env = {**os.environ, "CP_PROBE": scenario, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    cmd = [sys.executable, "-m", "pytest", "test_probe.py", "--cluster", "cluster.yaml", "--reports-dir", "reports",
           "-p", "no:cacheprovider", "-q", "-rfEs", *args]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=240)
    runs = [p for p in (work / "reports").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Run(proc.returncode, proc.stdout + proc.stderr, runs[0])


def rebuild(run: Run) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "clusterproof.cli", "report", "build", str(run.run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    return proc.returncode, proc.stdout + proc.stderr


def assert_one_verdict(run: Run, failing: list[str]) -> None:
    """Exit status, scorecard, failing criteria, junit.xml and `report build` say the same thing."""
    card = run.scorecard
    assert run.failing() == failing, run.out[-3000:]
    assert card["verdict"] == ("fail" if failing else "pass")
    assert (run.rc != 0) == bool(failing), f"exit {run.rc} but the report says {card['verdict']}\n{run.out[-3000:]}"
    failures, criteria = run.junit()
    assert sorted(criteria) == sorted(failing)  # one failed testcase per failing criterion
    assert (failures > 0) == bool(failing)
    rc, out = rebuild(run)
    assert (rc != 0) == bool(failing) and f"verdict: {card['verdict'].upper()}" in out, out
    assert json.loads((run.run_dir / "scorecard.json").read_text())["scorecard"] == card["scorecard"]


def test_a_healthy_run_passes_with_its_known_limitation(tmp_path: Path) -> None:
    run = run_probe(tmp_path, "healthy")
    assert_one_verdict(run, [])
    statuses = {c["id"]: c["status"] for c in run.scorecard["scorecard"]}
    assert statuses["reliability.gpu_health"] == "pass" and statuses["reliability.node_facts"] == "pass"
    assert statuses["storage.access_matrix"] == "known limitation"  # the strict xfail, with its reason
    assert run.scorecard["known_limitations"] is True
    assert "PASS with known limitations" in (run.run_dir / "index.html").read_text()


@pytest.mark.parametrize(("scenario", "failing", "says"), [
    ("failing-finding", ["reliability.gpu_health"], "node02: 7 of 8 GPUs"),
    ("fixture-error", ["reliability.test_errors"], "node02: unreachable: connection refused"),
    ("assert-after-pass", ["reliability.gpu_health"], "the suite found something after its check passed"),
])
def test_every_way_to_fail_fails_everywhere(tmp_path: Path, scenario: str, failing: list[str], says: str) -> None:
    run = run_probe(tmp_path, scenario)
    assert_one_verdict(run, failing)
    details = [d for c in run.scorecard["scorecard"] for d in c["details"]]
    assert any(says in d for d in details), details


def test_a_secret_minted_in_a_worker_and_leaked_fails_the_run_and_the_rebuild(tmp_path: Path) -> None:
    from tests.data.one_verdict.probe_suite import MINTED

    run = run_probe(tmp_path, "secret", "-n", "2")
    ledgers = sorted(p.name for p in (run.run_dir / ".secret-fingerprints").glob("*.fp"))
    assert ledgers and all(name.startswith("gw") for name in ledgers), ledgers  # minted in a worker, not here
    assert_one_verdict(run, ["security.no_secrets"])
    details = next(c["details"] for c in run.scorecard["scorecard"] if c["id"] == "security.no_secrets")
    assert details == ["logs/leaky-tool.log: secret-looking text at line 1 (a secret this run minted)"]
    # Only salted fingerprints are kept, never the secret; and no page repeats it.
    for path in (run.run_dir / ".secret-fingerprints").iterdir():
        assert MINTED.encode() not in path.read_bytes()
    for page in ("index.html", "summary.md", "scorecard.json", "junit.xml"):
        assert MINTED not in (run.run_dir / page).read_text()
