"""The credential API under change: issue/use/revoke/reap flows at a steady rate while the inventory's disruption
runs (``storage.disruption_command``: the provider's rolling restart of its credential API; in the sandbox,
``clusterproof sandbox rolling-restart credentials``), and while RGW itself restarts (``storage.rgw_restart_command``).

Zero failed flows, zero wrong answers and zero leftovers is a pass. The RGW restart takes the storage away from
every other test too: run it on its own (``-k rgw_restart``); it is not in the sandbox inventory by default.
"""

from __future__ import annotations

import pytest

from clusterproof.inventory import StorageSettings
from clusterproof.storage import CredentialIssuer, RgwAdminSession, RgwUserIssuer, StsIssuer
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.resilience import FlowRunner, check_resilience, describe
from fixtures.findings import FindingRecorder


def _runner(issuer: CredentialIssuer, admin: RgwAdminSession, storage: StorageSettings, bucket: str,
            scope: str) -> FlowRunner:
    def purge(s: str) -> list[str]:
        users = RgwUserIssuer(storage.endpoint, *admin.keys, region=storage.region).purge(s)
        return users + StsIssuer(storage.endpoint, *admin.keys, region=storage.region).purge(s)

    return FlowRunner(issuer, storage.endpoint, storage.region, bucket, scope,
                      list_ids=lambda c: temp_ids(admin, c), purge=purge)


def test_s3_credential_api_through_disruption(s3_issuer: CredentialIssuer, s3_admin: RgwAdminSession, s3_bucket: str,
                                              s3_customer: str, storage: StorageSettings,
                                              findings: FindingRecorder) -> None:
    if not storage.disruption_command:
        pytest.skip("storage.disruption_command is not set: no change of the credential API to run flows through")
    if s3_issuer.kind != "http":
        pytest.skip(f"the disruption changes the provider's credential API (http); {s3_issuer.kind} does not use it")
    runner = _runner(s3_issuer, s3_admin, storage, s3_bucket, s3_customer)
    result = runner.run(storage.disruption_command, runs=storage.disruption_runs,
                        label=f"flows through `{' '.join(storage.disruption_command[-2:])}` x{storage.disruption_runs}")
    print(describe(result))
    findings.check(check_resilience(result, s3_issuer.kind))


def test_s3_flows_through_rgw_restart(s3_issuer: CredentialIssuer, s3_admin: RgwAdminSession, s3_bucket: str,
                                      s3_customer: str, storage: StorageSettings, findings: FindingRecorder) -> None:
    if not storage.rgw_restart_command:
        pytest.skip("storage.rgw_restart_command is not set (it restarts the storage under every test: run it alone)")
    runner = _runner(s3_issuer, s3_admin, storage, s3_bucket, s3_customer)
    result = runner.run(storage.rgw_restart_command, runs=1, label="flows through an RGW restart")
    print(describe(result))
    findings.check(check_resilience(result, s3_issuer.kind))
