"""The resilience and race judgements without a cluster, and the inventory keys they read."""

from __future__ import annotations

import pytest

from clusterproof.errors import InventoryError
from clusterproof.findings import Status
from clusterproof.inventory import parse_inventory
from clusterproof.storage.client import DEFAULT_REGION  # noqa: F401 - the module imports boto3 once
from clusterproof.storage.model import IssuerError
from clusterproof.storage.races import RaceResult, check_race
from clusterproof.storage.resilience import Disruption, Flow, ResilienceResult, check_resilience, retryable


def _result(**kw: object) -> ResilienceResult:
    flows = [Flow(i, "revoke", f"c-f{i}", started=10.0 + i, ended=11.0 + i) for i in range(4)]
    base = dict(label="rolling restart", flows=flows, disruptions=[Disruption(11.5, 13.0, 0, "replica r1: ok")],
                leftovers=[], removed_afterwards=[], seconds=5.0)
    base.update(kw)
    return ResilienceResult(**base)  # type: ignore[arg-type]


def test_a_clean_run_passes_with_its_counts() -> None:
    [f] = check_resilience(_result(), "http")
    assert f.status is Status.PASS
    assert f.values["flows"] == 4 and f.values["during_disruption"] == 3 and f.values["failed_flows"] == 0


@pytest.mark.parametrize(("change", "needle"), [
    ("failed", "failed after 0 retries: lost"),
    ("wrong", "wrong answer: x still works"),
    ("leftover", "1 temporary credential(s) left"),
    ("no-overlap", "no flow overlapped"),
    ("rc", "the disruption command exited 3"),
    ("never", "the disruption never ran"),
])
def test_each_problem_fails(change: str, needle: str) -> None:
    r = _result()
    if change == "failed":
        r.flows[0].failure = "lost"
    elif change == "wrong":
        r.flows[1].wrong.append("x still works after revoke")
    elif change == "leftover":
        r.leftovers.append("cptmp_c-f1_1_abcd0123")
    elif change == "no-overlap":
        r.disruptions[0] = Disruption(100.0, 101.0, 0, "")
    elif change == "rc":
        r.disruptions[0] = Disruption(11.5, 13.0, 3, "boom")
    else:
        r.disruptions.clear()
    found = check_resilience(r, "http")
    assert any(f.status is Status.FAIL and needle in f.message for f in found), [f.message for f in found]
    assert not any(f.status is Status.PASS for f in found)


def test_retryable_errors() -> None:
    assert retryable(IssuerError("POST http://x: HTTP 503: unavailable"))
    assert retryable(IssuerError("POST http://x: ConnectionError: [Errno 111] Connection refused"))
    assert not retryable(IssuerError("POST http://x: HTTP 401: wrong bearer token"))
    assert not retryable(ValueError("ttl_seconds 0: must be positive"))


def test_race_check() -> None:
    ok = [RaceResult("two reapers at once", notes=["1 id(s) reported by both reapers"]) for _ in range(3)]
    [f] = check_race(ok, "http")
    assert f.status is Status.PASS and "3 round(s)" in f.message
    bad = ok + [RaceResult("two reapers at once", problems=["live credentials deleted"])]
    assert [f.message for f in check_race(bad, "http")] == ["two reapers at once, round 4: live credentials deleted"]


def _inv(storage: dict) -> object:
    return parse_inventory({"nodes": [{"name": "n1", "host": "10.0.0.1"}], "ssh": {"strict_host_keys": False},
                            "storage": {"endpoint": "http://s3:80", "admin_access_key_env": "A",
                                        "admin_secret_key_env": "B", **storage}}, "my-cluster.yaml")


def test_inventory_storage_performance_and_disruption() -> None:
    inv = _inv({"performance": {"sizes": ["4K", "256M"], "concurrency": [1, 8], "part_size": "8M",
                                "thresholds": {"1M": {"min_get_gbs": 1.5, "max_p99_ms": 200}}},
                "disruption_command": "kubectl rollout restart deploy/creds -n r2", "disruption_runs": 3,
                "race_rounds": 5, "node_endpoint": "http://10.0.0.100:80"})
    s = inv.storage  # type: ignore[attr-defined]
    assert s.performance.sizes == (4096, 256 << 20) and s.performance.part_size == 8 << 20
    assert s.performance.threshold(4096) is None and s.performance.threshold(64 << 20).min_get_gbs == 1.5
    assert s.disruption_command == ("kubectl", "rollout", "restart", "deploy/creds", "-n", "r2")
    assert (s.disruption_runs, s.race_rounds, s.rgw_restart_command) == (3, 5, ())


def test_inventory_errors_name_the_field() -> None:
    with pytest.raises(InventoryError) as e:
        _inv({"performance": {"sizes": [], "objects": 0, "thresholds": {"1M": {"min_put": 1}}},
              "disruption_command": "", "node_endpoint": "s3:80"})
    text = str(e.value)
    for needle in ("storage.performance.sizes: expected a non-empty list", "storage.performance.objects: must be >= 1",
                   "storage.performance.thresholds.1M.min_put: unknown key", "storage.disruption_command: the command is empty",
                   "storage.node_endpoint: expected an http"):
        assert needle in text, text
