"""The data path through temporary credentials: with a credential from each issuer, PUT and GET objects of the
inventory's sizes (``storage.performance``; multipart above the part size) at each concurrency, from the head node
and then from every cluster node at once (the client is shipped over SSH and needs only python3), and LIST a prefix
holding many keys. Every object read back is compared with what was written (sha256 per object).

Rows go to ``<run>/datapath/*.csv`` (the report draws them); the numbers and their source are in the findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.inventory import Inventory, StorageSettings
from clusterproof.storage import CredentialIssuer
from clusterproof.storage import datapath as dp
from fixtures.findings import FindingRecorder

TTL_S = 3600


def _source(inventory: Inventory, storage: StorageSettings) -> str:
    if inventory.standin:
        return "sandbox: a memstore RGW on one machine, not a Ceph cluster"
    return f"measured on {storage.endpoint}"


def test_s3_datapath_head(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, storage: StorageSettings,
                          inventory: Inventory, report_dir: Path, findings: FindingRecorder) -> None:
    perf = storage.performance
    steps = dp.plan(perf, 1)
    cred = s3_issuer.issue(s3_customer, s3_bucket, "datapath/", TTL_S)
    try:
        job = dp.make_job(cred, storage.endpoint, storage.region, perf, "head", steps, list_keys=perf.list_keys)
        answer = dp.run_local(job)
    finally:
        s3_issuer.revoke(cred)
    source = _source(inventory, storage)
    rows = dp.tidy_rows([answer], s3_issuer.kind, "head", source)
    result = dp.check_datapath([answer], rows, steps, perf, s3_issuer.kind, source)
    path = dp.write_rows(rows, report_dir, f"{s3_issuer.kind}-head")
    findings.check(result, empty_reason=f"no step ran ({path})")


def test_s3_datapath_every_node_at_once(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str,
                                        storage: StorageSettings, inventory: Inventory, ssh_pool: object,
                                        report_dir: Path, findings: FindingRecorder) -> None:
    perf = storage.performance
    nodes = [n.name for n in inventory.nodes]
    if not nodes:
        pytest.skip(f"{inventory.source}: no nodes")
    steps = dp.plan(perf, len(nodes), perf.sizes_for_nodes())
    endpoint = storage.node_endpoint or storage.endpoint
    cred = s3_issuer.issue(s3_customer, s3_bucket, "datapath/", TTL_S)
    try:
        start = dp.start_time(3.0)
        jobs = {n: dp.make_job(cred, endpoint, storage.region, perf, n, steps, start_at=start) for n in nodes}
        answers = dp.run_on_nodes(ssh_pool, jobs, timeout_s=perf.deadline_s + 60)
    finally:
        s3_issuer.revoke(cred)
    source = _source(inventory, storage)
    where = f"{len(nodes)}nodes"
    rows = dp.tidy_rows(answers.values(), s3_issuer.kind, where, source)
    result = dp.check_datapath(list(answers.values()), rows, steps, perf, s3_issuer.kind, source)
    dp.write_rows(rows, report_dir, f"{s3_issuer.kind}-{where}")
    findings.check(result)
