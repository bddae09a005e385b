"""Soak: ``pytest suites/network --cluster X --soak 2h`` (or ``--repeat N``) repeats the sweep with validation
(``-c``) for that long: every collective on all nodes, plus the ring of node pairs for all_reduce so that a node
returning wrong results now and then is named, not only its node set. A progress line per cycle (elapsed, cycles,
worst busbw so far, first failure); the first wrong result or slowdown named by cycle, node set, node and size.
Without ``--soak``/``--repeat`` the test is skipped.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from clusterproof.inventory import Inventory
from clusterproof.network import soak
from clusterproof.network.collective import CollectiveRunner
from fixtures.findings import FindingRecorder
from fixtures.soak import SoakPlan

pytestmark = [pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric")]


def cycle_groups(inventory: Inventory) -> list[tuple[str, tuple[str, ...]]]:
    """Every collective on all nodes; all_reduce also on each pair of the ring (node01-node02, ..., nodeN-node01)."""
    names = tuple(n.name for n in inventory.nodes)
    groups = [(c, names) for c in inventory.nccl_tests.collectives if len(names) >= 2]
    if "all_reduce" in inventory.nccl_tests.collectives and len(names) >= 3:
        groups += [("all_reduce", (names[i], names[(i + 1) % len(names)])) for i in range(len(names))]
    return groups


def _say(config: pytest.Config, line: str) -> None:
    reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, flush=True)


def test_soak(soak_plan: SoakPlan | None, collective_runner: CollectiveRunner, inventory: Inventory,
              nccl_gid_env: dict[str, str], report_dir: Path, pytestconfig: pytest.Config,
              findings: FindingRecorder) -> None:
    if soak_plan is None:
        pytest.skip("no soak asked for (--soak DURATION or --repeat N)")
    sweep = inventory.nccl_tests.sweep
    validated = replace(sweep, check=max(1, sweep.check))  # a soak without validation cannot see a wrong result
    tracker = soak.SoakTracker(slowdown_pct=inventory.network_checks.soak_slowdown_pct,
                               references=inventory.references.active)
    groups = cycle_groups(inventory)
    if not groups:
        pytest.skip("fewer than two nodes: nothing to soak")
    started = time.monotonic()
    cycle = 0
    try:
        while not soak_plan.done(cycle, time.monotonic() - started):
            cycle += 1
            frames = []
            for collective, names in groups:
                res = collective_runner.run(collective, [inventory.node(n) for n in names], extra_env=nccl_gid_env,
                                            sweep=validated)
                if res.run is None or not len(res.run.results):
                    frames.append(pd.DataFrame([{"collective": collective, "node_set": ",".join(names),
                                                 "n_nodes": len(names), "size_bytes": 0, "placement": soak.NO_RESULT,
                                                 "busbw_gbs": 0.0, "wrong": 1, "log_path": f"logs/{res.log_path.name}"}]))
                    continue
                frames.append(res.run.results.assign(collective=collective, node_set=",".join(names), n_nodes=len(names),
                                                     n_ranks=res.run.nranks, log_path=f"logs/{res.log_path.name}"))
            tracker.add_cycle(cycle, time.monotonic() - started, pd.concat(frames, ignore_index=True))
            _say(pytestconfig, tracker.progress_line())
    finally:
        soak.write_table(tracker, report_dir)
    findings.check(soak.check_soak(tracker))
