"""clusterproof.storage.policy, to the letter: the documents RGW 16.2 was shown to enforce (tests/data/policies/
golden.json, regenerated only after the real-RGW access matrix passes: see make_golden.py there), and the
bucket-policy edits that keep other principals' statements."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from clusterproof.storage import policy

DATA = Path(__file__).parent / "data" / "policies"


def _golden_cases() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cases: dict[str, Any] = mod.cases()
    return cases


GOLDEN: dict[str, Any] = json.loads((DATA / "golden.json").read_text())


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_policy_document_is_the_one_rgw_enforced(name: str) -> None:
    # Built inside the test (not at import) so that mutation testing sees which test exercises which function.
    assert _golden_cases()[name] == GOLDEN[name]


def test_expiry_is_written_in_utc_whatever_the_input_zone() -> None:
    doc = _golden_cases()["identity.rw"]
    expired = next(s for s in doc["Statement"] if s["Sid"] == "cp-expired")
    assert expired["Condition"] == {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T12:00:00Z"}}


def test_bucket_policy_edits_keep_the_others_and_tolerate_statements_without_sid() -> None:
    foreign = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "x"}  # no Sid at all
    mine = {"Sid": "cp-t1.cp-objects", "Effect": "Allow"}
    doc = policy.with_statements({"Statement": [foreign, {"Sid": "cp-t1.cp-objects", "Effect": "Deny"}]}, [mine])
    assert doc == {"Version": "2012-10-17", "Statement": [foreign, mine]}
    assert policy.with_statements(None, [mine]) == {"Version": "2012-10-17", "Statement": [mine]}
    assert policy.sids(doc) == {"", "cp-t1.cp-objects"}
    assert policy.sids(None) == set() and policy.sids({}) == set()
    stripped = policy.without_sid_prefix(doc, "cp-t1")
    assert stripped == {"Version": "2012-10-17", "Statement": [foreign]}
    assert policy.without_sid_prefix(None, "cp-t1") == {"Version": "2012-10-17", "Statement": []}
    assert policy.without_sid_prefix({"Statement": [{"Sid": "cp-t10.x"}]}, "cp-t1")["Statement"] == [{"Sid": "cp-t10.x"}]


def test_expiry_is_utc_on_a_machine_whose_local_zone_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from datetime import UTC, datetime

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert policy.iso_utc(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == "2026-01-01T12:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()
