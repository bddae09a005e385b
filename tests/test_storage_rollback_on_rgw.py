"""An issue cut short by an RGW restart leaves nothing, for real: radosgw is stopped (SIGTERM, as in an upgrade)
or killed (SIGKILL, as in a crash) between making the principal and granting it, comes back 1.5 s later, and the issuer's undo must have landed by the time the issue raised (so a
caller's retry cannot find a second credential beside the first: the stop-17 duplicate and leftover)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from clusterproof.sandbox import rgw as sandbox_rgw
from clusterproof.storage import IssuerError, RgwAdminSession, RgwUserIssuer, StsIssuer
from clusterproof.storage.cleanup import temp_ids
from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401

pytestmark = pytest.mark.needs_rgw
RGW_AWAY_S = 1.5


STOPS = {"upgrade": sandbox_rgw.stop_radosgw, "crash": sandbox_rgw.kill_radosgw}


def _cut_by_a_restart(state_dir: Any, stop: str, real: Callable[..., Any], returned: list[str]) -> Callable[..., Any]:
    """``real`` wrapped: stop radosgw, bring it back after RGW_AWAY_S in a thread, then call ``real`` (refused)."""
    def cut(*args: Any, **kwargs: Any) -> Any:
        STOPS[stop](state_dir)

        def come_back() -> None:
            time.sleep(RGW_AWAY_S)
            returned.append(sandbox_rgw.start_radosgw(state_dir))

        threading.Thread(target=come_back, daemon=True).start()
        return real(*args, **kwargs)
    return cut


class _IamCutAtGrant:
    """The STS issuer's IAM client with put_role_policy cut by a restart; everything else passes through."""

    def __init__(self, iam: Any, cut: Callable[..., Any]) -> None:
        self._iam, self.put_role_policy = iam, cut

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iam, name)


# A crash stalls RGW's metadata writes for the sandbox's 10 s watch timeout: run once, the undo is the same code.
CASES = [("rgw-user", "upgrade"), ("rgw-user", "crash"), ("sts", "upgrade")]


@pytest.mark.parametrize("kind, stop", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_issue_cut_by_an_rgw_restart_raises_and_leaves_nothing(kind: str, stop: str, rgw: sandbox_rgw.RgwInfo,  # noqa: F811
                                                               rgw_admin: RgwAdminSession,  # noqa: F811
                                                               rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    bucket = rgw_bucket()
    customer = f"cpt-cut-{os.urandom(3).hex()}"
    returned: list[str] = []
    issuer: RgwUserIssuer | StsIssuer
    if kind == "rgw-user":
        issuer = RgwUserIssuer(rgw.endpoint, *rgw_admin.keys, timeout_s=3)
        issuer.admin.put_user_policy = _cut_by_a_restart(rgw.state_dir, stop, issuer.admin.put_user_policy,
                                                             returned)  # type: ignore[method-assign]
    else:
        issuer = StsIssuer(rgw.endpoint, *rgw_admin.keys, assumer_uid=f"cpt-cut-assumer-{kind}", timeout_s=3)
        issuer.issue(customer, bucket, "warm/", 60)  # makes the assumer before the cut
        issuer.admin.iam = _IamCutAtGrant(issuer.admin.iam, _cut_by_a_restart(  # type: ignore[assignment]
            rgw.state_dir, stop, issuer.admin.iam.put_role_policy, returned))
    try:
        before = set(temp_ids(rgw_admin, customer))
        with pytest.raises(IssuerError) as failed:
            issuer.issue(customer, bucket, "data/", 600)
        left = set(temp_ids(rgw_admin, customer)) - before
        assert returned, "radosgw had not come back when the issue answered: the undo did not wait for it"
        assert not left, f"the cut issue raised ({failed.value}) but left {left}"
        assert "undoing" not in str(failed.value), failed.value
    finally:
        if not returned:
            sandbox_rgw.start_radosgw(rgw.state_dir)
        issuer.purge(customer)
        if isinstance(issuer, StsIssuer):
            issuer.remove_assumer()
