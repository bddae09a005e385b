"""Run only by ``test_cleanup.py`` in a nested pytest (the name does not match ``test_*.py``): one test that
passes and one that fails midway, both leaving credentials, objects and buckets for the fixtures to clean up.
"""

from __future__ import annotations

import os

import pytest

from clusterproof.storage import CredentialIssuer
from fixtures.s3 import Connect

PROBE_ENV = "CP_S3_CLEANUP_PROBE_OUT"
pytestmark = pytest.mark.skipif(not os.environ.get(PROBE_ENV), reason="run by test_cleanup.py only")


def _note(*words: str) -> None:
    with open(os.environ[PROBE_ENV], "a") as fh:
        fh.write(" ".join(words) + "\n")


def _leave_things(issuer: CredentialIssuer, bucket: str, customer: str, connect: Connect) -> None:
    _note("bucket", bucket)
    for permission in ("object-read-write", "object-read-only"):
        cred = issuer.issue(customer, bucket, "data/", 600, permission)
        _note("credential", cred.id)
        if permission == "object-read-write":
            connect(cred).put_object(Bucket=bucket, Key="data/written-by-temp", Body=b"x")
            connect(cred).create_multipart_upload(Bucket=bucket, Key="data/unfinished-upload")


def test_probe_passes_and_leaves_resources(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_connect: Connect) -> None:
    _leave_things(s3_issuer, s3_bucket, s3_customer, s3_connect)


def test_probe_fails_midway(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_connect: Connect) -> None:
    _leave_things(s3_issuer, s3_bucket, s3_customer, s3_connect)
    raise AssertionError("deliberate failure midway, with credentials and objects left for the fixtures")
