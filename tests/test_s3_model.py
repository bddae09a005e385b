"""Input validation and the credential object: prefixes, TTLs, buckets, permissions, secrets kept out of repr."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clusterproof.redact import REDACTOR
from clusterproof.storage.model import (
    ReapError,
    TempCredential,
    normalise_prefix,
    validate_bucket,
    validate_permission,
    validate_ttl,
)


@pytest.mark.parametrize("given, expected", [
    ("data", "data/"), ("data/", "data/"), ("a/b/c", "a/b/c/"), ("x y", "x y/"), ("ünï/", "ünï/"),
    ("data.v2", "data.v2/"), ("a" * 1023, "a" * 1023 + "/"),
])
def test_s3_prefix_normalised_to_end_with_slash(given: str, expected: str) -> None:
    assert normalise_prefix(given) == expected


@pytest.mark.parametrize("bad, why", [
    ("da*ta", "'\\*'"), ("da?ta", "'\\?'"), ("data$", "'\\$'"), ("${aws:username}", "'\\$'"), ("../x", "segments"),
    ("data/../other", "segments"), ("data/./x", "segments"), (".", "segments"), ("data//x", "segments"),
    ("/data", "start with '/'"), ("da\x00ta", "U\\+0000"), ("da\nta", "U\\+000A"), ("da\x7fta", "U\\+007F"),
    ("", "non-empty"), ("a" * 1024, "1025 bytes"), ("é" * 600, "bytes"), ('da"ta', "'\"'"), ("da\\ta", "not allowed"),
    (None, "non-empty"), (b"data", "non-empty"),
])
def test_s3_bad_prefix_refused_with_reason(bad: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_prefix(bad)


@pytest.mark.parametrize("ttl", [0, -1, 3601, 1.5, "60", True, None])
def test_s3_bad_ttl_refused(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        validate_ttl(ttl, 3600, "test")


def test_s3_ttl_limits_accepted() -> None:
    assert validate_ttl(1, 3600, "test") == 1 and validate_ttl(3600, 3600, "test") == 3600


@pytest.mark.parametrize("bucket", ["ab", "A-bucket", "bucket_x", "-bucket", "bucket-", "b" * 64, "a..b", "", None])
def test_s3_bad_bucket_name_refused(bucket: object) -> None:
    with pytest.raises(ValueError, match="bucket"):
        validate_bucket(bucket)


def test_s3_permissions_are_r2_names() -> None:
    assert validate_permission("object-read-only") == "object-read-only"
    with pytest.raises(ValueError, match="object-read-write"):
        validate_permission("admin-read-write")


def test_s3_credential_repr_hides_secret_and_token_and_registers_them() -> None:
    cred = TempCredential(
        id="cptmp_acme_1_abcdef01", access_key_id="AKIDEXAMPLE0123", secret_access_key="s3cr3t-value-123",
        session_token="t0ken-value-456", expires_at=datetime(2026, 1, 1, tzinfo=UTC), customer="acme",
        bucket="bkt", prefix="data/", permission="object-read-write", issuer="sts",
    )
    for text in (repr(cred), str(cred), f"{cred}"):
        assert "s3cr3t-value-123" not in text and "t0ken-value-456" not in text
        assert "AKIDEXAMPLE0123" not in text and "access_key_id='AKID***'" in text, text
        assert "cptmp_acme_1_abcdef01" in text  # the id is a name, not a secret
    assert REDACTOR.redact("key s3cr3t-value-123 tok t0ken-value-456") == "key ***REDACTED*** tok ***REDACTED***"
    assert REDACTOR.redact("access key AKIDEXAMPLE0123") == "access key ***REDACTED***"
    assert cred.client_kwargs() == {"access_key": "AKIDEXAMPLE0123", "secret_key": "s3cr3t-value-123",
                                    "session_token": "t0ken-value-456"}


def test_s3_credential_whose_id_is_the_access_key_masks_both() -> None:
    """An R2 service that returns no id makes the access key the id (HttpIssuer): repr must not print it there."""
    cred = TempCredential(
        id="R2KEYID0000111122223333", access_key_id="R2KEYID0000111122223333", secret_access_key="r2-secret-value",
        session_token="r2-session-token", expires_at=datetime(2026, 1, 1, tzinfo=UTC), customer="acme",
        bucket="bkt", prefix="data/", permission="object-read-only", issuer="http",
    )
    assert "R2KEYID0000111122223333" not in repr(cred) and "id='R2KE***'" in repr(cred)


def test_s3_reap_error_keeps_deleted_ids_and_pickles() -> None:
    import pickle

    err = ReapError("rgw-user reap acme", ["cptmp_acme_1_00000001"], {"cptmp_acme_1_00000002": "HTTP 500"})
    assert err.deleted == ["cptmp_acme_1_00000001"] and err.failures == {"cptmp_acme_1_00000002": "HTTP 500"}
    assert "cptmp_acme_1_00000002: HTTP 500" in str(err) and "cptmp_acme_1_00000001" in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.deleted, copy.failures) == (ReapError, str(err), err.deleted, err.failures)
