"""Bad input gets a clear ValueError and creates nothing, for every issuer kind (for ``http``: the provider's
service itself must answer 400). Prefixes are normalised to end with ``/``.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from clusterproof.s3 import CredentialIssuer, RgwAdminSession
from clusterproof.s3.cleanup import temp_ids
from fixtures.s3 import Connect

BAD_PREFIXES = {
    "star": "da*ta/", "question-mark": "da?ta/", "dollar": "data$/", "policy-variable": "${aws:username}/",
    "dotdot-segment": "data/../other/", "dotdot-only": "..", "dot-segment": "data/./x/", "leading-slash": "/data/",
    "nul": "da\x00ta/", "newline": "da\nta/", "tab": "da\tta/", "empty": "", "too-long": "a" * 1025,
    "double-quote": 'da"ta/', "backslash": "da\\ta/",
}
BAD_CUSTOMERS = {
    "underscore": "acme_corp", "uppercase": "Acme", "dot": "acme.corp", "empty": "", "leading-dash": "-acme",
    "trailing-dash": "acme-", "too-long": "a" * 33, "space": "ac me", "slash": "acme/x", "dollar": "acme$x",
}


def _assert_refused_and_nothing_created(issuer: CredentialIssuer, admin: RgwAdminSession, tag: str, **kwargs: Any) -> None:
    before = set(temp_ids(admin, tag))
    args: dict[str, Any] = {"customer": f"{tag}-{secrets.token_hex(3)}", "prefix": "data/", "ttl_seconds": 60} | kwargs
    with pytest.raises(ValueError) as refused:
        issuer.issue(args["customer"], args["bucket"], args["prefix"], args["ttl_seconds"])
    created = set(temp_ids(admin, tag)) - before
    assert not created, f"refused ({refused.value}) but created {created}"
    assert str(refused.value), "the error must say what is wrong"


@pytest.mark.parametrize("prefix", BAD_PREFIXES.values(), ids=BAD_PREFIXES.keys())
def test_s3_bad_prefix_refused(s3_issuer: CredentialIssuer, s3_bucket: str, s3_admin: RgwAdminSession, s3_tag: str, prefix: str) -> None:
    _assert_refused_and_nothing_created(s3_issuer, s3_admin, s3_tag, bucket=s3_bucket, prefix=prefix)


@pytest.mark.parametrize("customer", BAD_CUSTOMERS.values(), ids=BAD_CUSTOMERS.keys())
def test_s3_bad_customer_refused(s3_issuer: CredentialIssuer, s3_bucket: str, s3_admin: RgwAdminSession, s3_tag: str, customer: str) -> None:
    _assert_refused_and_nothing_created(s3_issuer, s3_admin, s3_tag, bucket=s3_bucket, customer=customer)


@pytest.mark.parametrize("ttl", ["zero", "negative", "above-max", "not-an-integer"])
def test_s3_bad_ttl_refused(s3_issuer: CredentialIssuer, s3_bucket: str, s3_admin: RgwAdminSession, s3_tag: str, ttl: str) -> None:
    value = {"zero": 0, "negative": -5, "above-max": s3_issuer.max_ttl_seconds + 1, "not-an-integer": "60"}[ttl]
    _assert_refused_and_nothing_created(s3_issuer, s3_admin, s3_tag, bucket=s3_bucket, ttl_seconds=value)


def test_s3_missing_bucket_refused(s3_issuer: CredentialIssuer, s3_admin: RgwAdminSession, s3_tag: str) -> None:
    _assert_refused_and_nothing_created(s3_issuer, s3_admin, s3_tag, bucket=f"cp-missing-{secrets.token_hex(6)}")


def test_s3_prefix_normalised_to_end_with_slash(s3_issuer: CredentialIssuer, s3_bucket: str, s3_customer: str, s3_connect: Connect) -> None:
    from clusterproof.s3.matrix import DENY, attempt

    cred = s3_issuer.issue(s3_customer, s3_bucket, "data", 600)
    assert cred.prefix == "data/", f"prefix 'data' came back as {cred.prefix!r}"
    client = s3_connect(cred)
    obs = attempt(lambda: client.put_object(Bucket=s3_bucket, Key="data2/x", Body=b"x"))
    assert obs.observed == DENY, f"a grant on 'data' reaches data2/: {obs.detail}"
    s3_issuer.revoke(cred)
