"""``wait_until_denied`` against a real RGW: a transient error before the expiry does not end the poll; only a real
refusal does, and a poll that times out reports the last answers it saw."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import RgwAdminSession, s3_client
from clusterproof.storage.matrix import ALLOW, DENY, wait_until_denied
from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401


def _calls(rgw: RgwInfo, admin: RgwAdminSession, bucket: str) -> dict[str, Callable[[], Any]]:  # noqa: F811
    """Real S3 calls with known answers: 200, 404 NoSuchKey (an error that is not a refusal), 403 (anonymous)."""
    admin.s3.put_object(Bucket=bucket, Key="data/seed", Body=b"s")
    anonymous = s3_client(rgw.endpoint, anonymous=True)
    return {
        "allow": lambda: admin.s3.get_object(Bucket=bucket, Key="data/seed")["Body"].read(),
        "error": lambda: admin.s3.get_object(Bucket=bucket, Key="data/missing"),
        "deny": lambda: anonymous.get_object(Bucket=bucket, Key="data/seed"),
    }


def _script(calls: dict[str, Callable[[], Any]], steps: list[str]) -> tuple[Callable[[], Any], list[str]]:
    """A probe that makes the real calls named in ``steps`` one after the other (the last one repeats)."""
    made: list[str] = []
    todo: Iterator[str] = iter(steps)

    def probe() -> Any:
        step = next(todo, steps[-1])
        made.append(step)
        return calls[step]()

    return probe, made


def test_s3_wait_until_denied_polls_past_transient_errors(rgw: RgwInfo, rgw_admin: RgwAdminSession, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    probe, made = _script(_calls(rgw, rgw_admin, rgw_bucket()), ["error", "allow", "error", "error", "deny"])
    obs, at = wait_until_denied(probe, datetime.now(UTC) + timedelta(seconds=20), interval_s=0.01)
    assert obs.observed == DENY and "403" in obs.detail, obs
    assert made == ["error", "allow", "error", "error", "deny"], f"stopped early after {made}"


def test_s3_wait_until_denied_times_out_with_the_last_answers(rgw: RgwInfo, rgw_admin: RgwAdminSession, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    probe, made = _script(_calls(rgw, rgw_admin, rgw_bucket()), ["allow", "error", "allow"])
    deadline = datetime.now(UTC) + timedelta(seconds=1)
    obs, at = wait_until_denied(probe, deadline, interval_s=0.05, remember=3)
    assert at >= deadline and obs.observed == ALLOW and len(made) > 3, (obs, made)
    assert "not denied by" in obs.detail and obs.detail.count("allow (200)") == 3, obs.detail
