"""The access-matrix table itself: ids fit ``-k``, every case has an operation, and failures name the hole."""

from __future__ import annotations

import pytest

from clusterproof.storage.matrix import (
    ALLOW,
    CASES,
    DENY,
    KNOWN_RGW_LIMITATIONS,
    OPERATIONS,
    CaseResult,
    Layout,
    Observation,
)

LAYOUT = Layout("bkt", "other-bkt", "data/")


def test_s3_matrix_ids_unique_and_selectable() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert not [i for i in ids if any(ch in i for ch in "/ |")]
    assert all(c.op in OPERATIONS for c in CASES)
    wheres = {c.where for c in CASES}
    assert {"inside", "sibling", "root", "no-prefix", "other-bucket", "bucket", "new-bucket"} <= wheres


def test_s3_matrix_covers_the_operations_the_issue_names() -> None:
    ops = {c.op for c in CASES}
    assert {"put", "get", "head", "delete", "copy_in", "copy_out", "list_v1", "list_v2", "list_v1_delim",
            "list_v2_delim", "mp_create", "mp_upload_part", "mp_list_parts", "mp_complete", "mp_abort",
            "delete_objects", "get_bucket_policy", "put_bucket_policy", "get_bucket_acl", "put_bucket_acl",
            "create_bucket"} <= ops


def test_s3_matrix_read_only_never_expects_a_write() -> None:
    writes = [c for c in CASES if c.read_only == ALLOW and not c.op.startswith(("get", "head", "list"))]
    assert not writes


def test_s3_known_limitations_refer_to_existing_cases() -> None:
    ids = {c.id for c in CASES}
    assert all(case_id in ids for (_, _, case_id) in KNOWN_RGW_LIMITATIONS)


@pytest.mark.parametrize("case_id, message", [
    ("get-sibling", "sibling prefix data2/ readable: grant leaks beyond data/"),
    ("put-sibling", "sibling prefix data2/ writable: grant leaks beyond data/"),
    ("list_v2-no-prefix", "whole bucket listable without a prefix: ListBucket lacks the s3:prefix condition"),
    ("get-other-bucket", "other bucket other-bkt readable: grant leaks beyond bucket bkt"),
    ("create_bucket-new-bucket", "the credential can create buckets"),
])
def test_s3_failed_case_names_the_hole(case_id: str, message: str) -> None:
    case = next(c for c in CASES if c.id == case_id)
    result = CaseResult(case, "object-read-write", Observation(ALLOW, "200"), LAYOUT)
    assert not result.passed
    assert result.message().startswith(message)
    assert f"{case_id} (object-read-write): expected deny, observed allow (RGW answered: 200)" in result.message()


def test_s3_too_narrow_grant_is_reported_as_such() -> None:
    case = next(c for c in CASES if c.id == "put-inside")
    result = CaseResult(case, "object-read-write", Observation(DENY, "403 AccessDenied"), LAYOUT)
    assert "too narrow" in result.message() and "403 AccessDenied" in result.message()
