"""Policy documents: the prefix grant, the deny rules that close the temporary-user holes, compact JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from clusterproof.storage import policy

EXPIRY = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _by_sid(doc: dict[str, Any]) -> dict[str, Any]:
    return {s["Sid"]: s for s in doc["Statement"]}


def test_s3_policy_grant_is_scoped_to_prefix_with_slash() -> None:
    doc = _by_sid(policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY))
    assert doc["cp-objects"]["Resource"] == ["arn:aws:s3:::bkt/data/*"]
    assert doc["cp-list"]["Condition"] == {"StringLike": {"s3:prefix": ["data/*"]}}
    assert doc["cp-multi-delete"]["Resource"] == ["arn:aws:s3:::bkt"]
    assert set(doc["cp-objects"]["Action"]) >= {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}


def test_s3_policy_read_only_grants_no_write_and_denies_all_writes() -> None:
    doc = _by_sid(policy.identity_policy("bkt", "data/", "object-read-only", EXPIRY))
    assert doc["cp-objects"]["Action"] == ["s3:GetObject"]
    assert "cp-multi-delete" not in doc
    assert doc["cp-read-only"]["Effect"] == "Deny" and "s3:PutObject" in doc["cp-read-only"]["Action"]


def test_s3_policy_denies_close_the_measured_holes() -> None:
    doc = _by_sid(policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY))
    assert doc["cp-expired"]["Condition"] == {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T12:00:00Z"}}
    assert doc["cp-outside-grant"]["NotResource"] == ["arn:aws:s3:::bkt", "arn:aws:s3:::bkt/data/*"]
    assert "s3:PutObjectAcl" in doc["cp-object-acl"]["Action"]
    for acl in ("public-read", "public-read-write", "authenticated-read"):  # one StringEquals each (RGW 16.2)
        assert doc[f"cp-canned-acl-{acl}"]["Condition"] == {"StringEquals": {"s3:x-amz-acl": acl}}
    for header in ("read", "write", "read-acp", "write-acp", "full-control"):
        assert doc[f"cp-grant-{header}"]["Condition"] == {"StringLike": {f"s3:x-amz-grant-{header}": "*"}}
    assert all(s["Effect"] == "Deny" for sid, s in doc.items() if sid not in ("cp-objects", "cp-multi-delete", "cp-list"))
    # no Not-condition with a list: RGW 16.2 evaluates it as "differs from any entry", i.e. always true
    text = json.dumps(doc)
    assert "StringNotEquals" not in text and "StringNotLike" not in text and '"Null"' not in text


def test_s3_policy_compact_json_has_no_spaces() -> None:
    text = policy.compact(policy.identity_policy("bkt", "my data/", "object-read-write", EXPIRY))
    assert ", " not in text and ": " not in text
    assert json.loads(text)["Version"] == "2012-10-17"


def test_s3_policy_weakened_variants_are_what_they_say() -> None:
    slashless = _by_sid(policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY, object_pattern="data*"))
    assert slashless["cp-objects"]["Resource"] == ["arn:aws:s3:::bkt/data*"]
    uncond = _by_sid(policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY, list_condition=False))
    assert "Condition" not in uncond["cp-list"]


def test_s3_bucket_policy_statements_added_and_removed_by_sid() -> None:
    grant = policy.for_principal(policy.grant_statements("bkt", "data/", "object-read-only"),
                                 policy.user_arn("cptmp_acme_1_abcdef01"), "cptmp_acme_1_abcdef01")
    owner = policy.owner_access_statement("bkt", "cp-admin")
    doc = policy.with_statements(policy.with_statements(None, [owner]), grant)
    assert policy.sids(doc) == {"cp-owner-access", "cptmp_acme_1_abcdef01.cp-objects", "cptmp_acme_1_abcdef01.cp-list"}
    assert doc["Statement"][1]["Principal"] == {"AWS": ["arn:aws:iam:::user/cptmp_acme_1_abcdef01"]}
    again = policy.with_statements(doc, grant)  # idempotent: same Sids replace, never duplicate
    assert len(again["Statement"]) == 3
    assert policy.sids(policy.without_sid_prefix(doc, "cptmp_acme_1_abcdef01")) == {"cp-owner-access"}


def test_s3_principal_arn_of_tenant_user() -> None:
    assert policy.user_arn("tenantx$bob") == "arn:aws:iam::tenantx:user/bob"
    assert policy.user_arn("bob") == "arn:aws:iam:::user/bob"


def test_s3_anonymous_deny_targets_only_anonymous_gets() -> None:
    st = policy.deny_anonymous_reads_statement("bkt")
    assert st["Effect"] == "Deny" and st["Action"] == ["s3:GetObject"]
    assert st["Condition"] == {"StringEquals": {"aws:username": "anonymous"}}
