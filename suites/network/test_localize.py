"""Which node or link is bad, and node-level collectives.

* ``test_bad_node_localized[<collective>-<N>nodes]``: when the all-node run failed in any way (below threshold,
  hung, crashed, wrong results), the bad node or link is searched with concurrent rounds of 2-node runs of the
  same kind (short timeouts for a hang, validation for wrong results). A bad node is its own FAIL finding and
  goes into ``reports/<run>/unfit_nodes.txt``.
* ``test_node_collective[<node>-single|ib_only]``: one single-node run per node and its IB-only variant
  (``NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1``), against the inventory's ``node_collectives`` thresholds.
* ``test_rail[<rail>]``: every node on one rail; a slow rail is searched on that rail, naming node and rail.
"""

from __future__ import annotations

import pytest

from clusterproof.findings import Criterion, Subject, not_tested
from clusterproof.inventory import Inventory
from clusterproof.network.localize_findings import localization_findings
from clusterproof.network.localize_model import FailureKind
from clusterproof.network.node_checks import judge_run
from fixtures.findings import FindingRecorder
from fixtures.inventory import get_inventory
from fixtures.nccl import CollectiveRuns, GroupSpec

pytestmark = [pytest.mark.nccl, pytest.mark.exclusive, pytest.mark.xdist_group("fabric")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    inv = get_inventory(metafunc.config)
    names = tuple(n.name for n in inv.nodes)
    if "all_nodes_group" in metafunc.fixturenames:
        specs = [GroupSpec(c, names) for c in inv.nccl_tests.collectives]
        metafunc.parametrize("all_nodes_group", specs, ids=[s.id for s in specs])
    if "node_variant" in metafunc.fixturenames:
        cases = [(n, v) for n in names for v in ("single", "ib_only")] if inv.node_collectives else []
        metafunc.parametrize("node_variant", cases, ids=[f"{n}-{v}" for n, v in cases])
    if "rail_name" in metafunc.fixturenames:
        rails = [r.name for r in inv.rails.rails] if inv.rails else []
        metafunc.parametrize("rail_name", rails, ids=rails)


def test_bad_node_localized(all_nodes_group: GroupSpec, collective_runs: CollectiveRuns, findings: FindingRecorder,
                            request: pytest.FixtureRequest) -> None:
    res = collective_runs.get(all_nodes_group, request.node.nodeid)  # the same (cached) run the collective tests judge
    kind = collective_runs.failure_of(res)
    subject = Subject("node_set", ",".join(all_nodes_group.nodes))
    if kind is None:
        findings.check(not_tested(Criterion.BAD_NODE, subject, f"{all_nodes_group.id}: the all-node run passed, nothing to localise"))
        return
    if all_nodes_group.n_nodes < 3:
        findings.check(not_tested(Criterion.BAD_NODE, subject, f"{all_nodes_group.id} {kind}: a search needs at least 3 nodes"))
        return
    loc = collective_runs.localize(all_nodes_group.collective, kind)
    print(loc.explain())  # every round, every pair's number or error: shown with the failure
    findings.check(localization_findings(loc))


def test_node_collective(node_variant: tuple[str, str], collective_runs: CollectiveRuns, findings: FindingRecorder,
                         inventory: Inventory) -> None:
    node, variant = node_variant
    settings = inventory.node_collectives
    assert settings is not None
    ib_only = variant == "ib_only"
    res = collective_runs.run_node(node, ib_only)
    what = f"{node}: {'IB-only (NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1)' if ib_only else 'single-node'} {settings.collective}"
    findings.check(judge_run(res, Criterion.NODE_COLLECTIVES, Subject("node", node), what, lambda size: settings.lookup(ib_only, size)))


def test_rail(rail_name: str, collective_runs: CollectiveRuns, findings: FindingRecorder, inventory: Inventory) -> None:
    rails = inventory.rails
    assert rails is not None
    res = collective_runs.run_rail(rail_name)
    what = f"{rails.collective} on {rail_name}, {len(inventory.nodes)} nodes"
    verdict = judge_run(res, Criterion.RAILS, Subject("rail", rail_name), what, rails.lookup)
    failing = [f for f in verdict if f.failed]
    if failing and len(inventory.nodes) >= 3:
        kind = collective_runs.failure_of(res)
        loc = collective_runs.localize(rails.collective, kind or FailureKind.SLOW, rail=rail_name)
        print(loc.explain())
        verdict += localization_findings(loc, Criterion.RAILS, rail=rail_name)
    findings.check(verdict)
