"""The credential API under change, for real: two replicas of the reference service behind Debian's HAProxy on a
real RGW. Flows run through a rolling restart of the replicas (zero failed flows, zero wrong answers, zero
leftovers) and through an RGW restart (reported, nothing left behind); a revoke that does nothing is caught.

``CLUSTERPROOF_RESILIENCE_RUNS=5`` repeats the rolling-restart run (the done-when of issue 14 is 5 out of 5).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterproof.findings import Status
from clusterproof.sandbox import credentials
from clusterproof.sandbox import rgw as sandbox_rgw
from clusterproof.storage import HttpIssuer, RgwAdminSession, RgwUserIssuer, TempCredential
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.resilience import FlowRunner, check_resilience, describe
from tests.rgw_fixture import free_port, rgw, rgw_admin, rgw_bucket  # noqa: F401

pytestmark = [pytest.mark.needs_rgw, pytest.mark.skipif(shutil.which("haproxy") is None and
                                                        not os.path.exists(credentials.HAPROXY),
                                                        reason="haproxy is not installed (apt-get install haproxy)")]
TOKEN_ENV = "CP_CREDENTIALS_TOKEN"


@pytest.fixture(scope="module")
def service(rgw: sandbox_rgw.RgwInfo) -> Iterator[tuple[Path, str, str]]:  # noqa: F811
    """Yields: (state dir, HAProxy URL, bearer token) of two replicas behind HAProxy. Scope: module.
    Cleans up: stops HAProxy and the replicas, deletes the state dir."""
    state = Path(tempfile.mkdtemp(prefix="cp-creds-test-"))
    token = "tok-" + os.urandom(12).hex()
    env = {**sandbox_rgw.read_secrets_file(rgw.secrets_file), TOKEN_ENV: token}
    fd = os.open(state / "secrets.env", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in env.items())
    try:
        svc = credentials.start(state, rgw.endpoint, env, free_port(), 0)
        yield state, svc.url, token
    finally:
        credentials.stop(state)
        shutil.rmtree(state, ignore_errors=True)


def _runner(issuer: object, admin: RgwAdminSession, endpoint: str, bucket: str, scope: str) -> FlowRunner:
    return FlowRunner(issuer, endpoint, "default", bucket, scope, list_ids=lambda c: temp_ids(admin, c),  # type: ignore[arg-type]
                      purge=lambda s: RgwUserIssuer(endpoint, *admin.keys).purge(s))


RUNS = int(os.environ.get("CLUSTERPROOF_RESILIENCE_RUNS", "1"))


@pytest.mark.parametrize("run", range(RUNS))
def test_rolling_restart_of_the_credential_api_fails_no_flow(run: int, service: tuple[Path, str, str],
                                                             rgw: sandbox_rgw.RgwInfo,  # noqa: F811
                                                             rgw_admin: RgwAdminSession, rgw_bucket: object) -> None:  # noqa: F811
    state, url, token = service
    bucket = rgw_bucket()  # type: ignore[operator]
    runner = _runner(HttpIssuer(url, token), rgw_admin, rgw.endpoint, bucket, f"cpt-rr{run}-{os.urandom(3).hex()}")
    disruption = [sys.executable, "-m", "clusterproof.cli", "sandbox", "--state-dir", str(state), "rolling-restart",
                  "credentials"]
    result = runner.run(disruption, label="rolling restart of the credential API")
    print(describe(result))
    [finding] = check_resilience(result, "http")
    assert finding.status is Status.PASS, describe(result)
    assert result.counts()["during_disruption"] >= 3 and not result.leftovers
    assert all(s == "UP" for s in credentials.server_states(state).values())


def test_rgw_restart_mid_flow_is_reported_and_leaves_nothing(service: tuple[Path, str, str],
                                                             rgw: sandbox_rgw.RgwInfo,  # noqa: F811
                                                             rgw_admin: RgwAdminSession, rgw_bucket: object) -> None:  # noqa: F811
    _, url, token = service
    scope = f"cpt-rgw-{os.urandom(3).hex()}"
    runner = _runner(HttpIssuer(url, token), rgw_admin, rgw.endpoint, rgw_bucket(), scope)  # type: ignore[operator]
    result = runner.run([sys.executable, "-m", "clusterproof.sandbox.rgw", "restart", "--state-dir",
                         str(rgw.state_dir)], label="RGW restart")
    print(describe(result))
    findings = check_resilience(result, "http")
    assert result.disruptions[0].rc == 0 and "radosgw pid" in result.disruptions[0].output
    assert not result.wrong_answers, describe(result)
    assert temp_ids(rgw_admin, scope) == [], "something was left behind after the RGW restart"
    # What happened is said: retried errors and the restart's own line are in the finding.
    assert findings[0].status is Status.PASS, describe(result)
    assert "radosgw pid" in findings[0].message and "retries" in findings[0].message


class _RevokeDoesNothing(RgwUserIssuer):
    def revoke(self, credential: TempCredential) -> None:  # a broken API: answers OK, deletes nothing
        return None


def test_a_revoke_that_does_nothing_is_caught(rgw: sandbox_rgw.RgwInfo, rgw_admin: RgwAdminSession,  # noqa: F811
                                              rgw_bucket: object) -> None:  # noqa: F811
    scope = f"cpt-bad-{os.urandom(3).hex()}"
    runner = _runner(_RevokeDoesNothing(rgw.endpoint, *rgw_admin.keys), rgw_admin, rgw.endpoint,
                     rgw_bucket(), scope)  # type: ignore[operator]
    result = runner.run(["sleep", "0.3"], warmup_s=0.3, tail_s=0.3, min_flows=4, label="broken revoke")
    messages = [f.message for f in check_resilience(result, "rgw-user") if f.status is Status.FAIL]
    assert any("still works after the API said it was revoked" in m for m in messages)
    assert any("left after every flow ended" in m for m in messages)
    assert temp_ids(rgw_admin, scope) == [], "the leftovers were not removed afterwards"


def test_two_cleanups_at_once_through_haproxy_never_both_report_an_id(service: tuple[Path, str, str],
                                                                      rgw_bucket: object) -> None:  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    _, url, token = service
    issuer, bucket = HttpIssuer(url, token), rgw_bucket()  # type: ignore[operator]
    for n in range(5):
        customer = f"cpt-twice{n}-{os.urandom(3).hex()}"
        creds = [issuer.issue(customer, bucket, f"p{i}/", 600) for i in range(3)]
        later = creds[-1].expires_at + timedelta(hours=1)
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(lambda _, c=customer, t=later: issuer.reap(c, t), range(2))
        assert set(first) | set(second) == {c.id for c in creds}
        assert not set(first) & set(second), f"both cleanups reported {set(first) & set(second)}"
