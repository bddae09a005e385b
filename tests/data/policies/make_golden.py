"""Regenerate golden.json: `python tests/data/policies/make_golden.py`. Only after the real-RGW access matrix
(suites/storage, tests/test_s3_holes.py) passed with the changed documents: golden.json records the documents that
RGW 16.2 was shown to enforce, so that any change to them is a deliberate one."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from clusterproof.storage import policy

EXPIRY = datetime(2026, 1, 1, 13, 30, 0, tzinfo=timezone(timedelta(hours=1, minutes=30)))  # 12:00Z


def cases() -> dict[str, Any]:
    grant = policy.grant_statements("bkt", "data/", "object-read-write")
    return {
        "identity.rw": policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY),
        "identity.ro": policy.identity_policy("bkt", "team/a/", "object-read-only", EXPIRY),
        "identity.rw.hole_pattern": policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY, object_pattern="data*"),
        "identity.rw.hole_list": policy.identity_policy("bkt", "data/", "object-read-write", EXPIRY, list_condition=False),
        "for_principal": policy.for_principal([*grant, {"Effect": "Allow"}], "arn:aws:iam:::user/t1", "cp-t1"),
        "owner": policy.owner_access_statement("bkt", "ten$owner"),
        "anonymous": policy.deny_anonymous_reads_statement("bkt"),
        "compact": policy.compact(policy.document(grant[:1])),
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("golden.json")
    out.write_text(json.dumps(cases(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
