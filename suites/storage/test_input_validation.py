"""Bad input gets a clear ValueError and creates nothing, for every issuer kind (for ``http``: the provider's
service itself must answer 400, checked with raw requests that bypass the client's own validation). Prefixes are
normalised to end with ``/``.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import pytest
import requests

from clusterproof.findings import Criterion
from clusterproof.inventory import StorageSettings
from clusterproof.storage import CredentialIssuer, RgwAdminSession, decode_role_name, decode_uid
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.http import API_ROOT
from clusterproof.storage.names import validate_scope
from fixtures.s3 import Connect

pytestmark = pytest.mark.criterion(Criterion.CREDENTIAL_RESILIENCE)

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
    args: dict[str, Any] = {"customer": f"{tag}-{secrets.token_hex(3)}", "prefix": "data/", "ttl_seconds": 60} | kwargs
    # A fresh customer of its own: other tests of this worker share the tag (and may leave flows of theirs running).
    # A customer id that is itself invalid cannot be a scope: then every id of the tag is watched.
    try:
        scope = validate_scope(args["customer"])
    except ValueError:
        scope = tag
    before = set(temp_ids(admin, scope))
    with pytest.raises(ValueError) as refused:
        issuer.issue(args["customer"], args["bucket"], args["prefix"], args["ttl_seconds"])
    created = set(temp_ids(admin, scope)) - before
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
    from clusterproof.storage.matrix import DENY, attempt

    cred = s3_issuer.issue(s3_customer, s3_bucket, "data", 600)
    assert cred.prefix == "data/", f"prefix 'data' came back as {cred.prefix!r}"
    client = s3_connect(cred)
    obs = attempt(lambda: client.put_object(Bucket=s3_bucket, Key="data2/x", Body=b"x"))
    assert obs.observed == DENY, f"a grant on 'data' reaches data2/: {obs.detail}"
    s3_issuer.revoke(cred)


def _bad_customer(kind: str, marker: str) -> str:
    """A bad customer id of ``kind`` that contains ``marker`` (except ``empty``), so whatever a broken service
    creates for it can be told apart from what other xdist workers create meanwhile."""
    return {
        "underscore": f"{marker}_corp", "uppercase": f"A{marker}", "dot": f"{marker}.corp", "empty": "",
        "leading-dash": f"-{marker}", "trailing-dash": f"{marker}-", "too-long": marker.ljust(33, "a"),
        "space": f"{marker} x", "slash": f"{marker}/x", "dollar": f"{marker}$x",
    }[kind]


def _principals(admin: RgwAdminSession) -> set[str]:
    return set(admin.user_ids()) | set(admin.role_names())


@pytest.mark.parametrize("kind", BAD_CUSTOMERS.keys())
def test_s3_http_service_itself_refuses_bad_customer(storage: StorageSettings, s3_bucket: str, s3_admin: RgwAdminSession, kind: str) -> None:
    """The HttpIssuer checks customer ids before sending; this posts straight to the provider's service with the
    bearer token, so the service's own validation is what answers."""
    token = storage.env_value("http_token_env")
    if "http" not in storage.issuers or not storage.http_base_url or not token:
        pytest.skip("the http issuer is not configured (storage.issuers, http_base_url, http_token_env)")
    marker = f"cpv{secrets.token_hex(4)}"
    customer = _bad_customer(kind, marker)
    url = (f"{storage.http_base_url.rstrip('/')}{API_ROOT}/accounts/{quote(customer, safe='')}"
           "/r2/temp-access-credentials")
    before = _principals(s3_admin)
    resp = requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=30, json={
        "bucket": s3_bucket, "prefixes": ["data/"], "permission": "object-read-only", "ttlSeconds": 60})
    created = sorted(n for n in _principals(s3_admin) - before
                     if marker in n.lower() or (n.startswith("cptmp") and not (decode_uid(n) or decode_role_name(n))))
    assert not created, f"customer {customer!r}: the service answered {resp.status_code} and created {created}"
    assert resp.status_code == 400, f"customer {customer!r}: expected 400, the service answered {resp.status_code}: {resp.text[:300]}"
    try:
        body = resp.json()
    except ValueError:
        pytest.fail(f"customer {customer!r}: the 400 has no JSON body (R2 answers an envelope): {resp.text[:300]}")
    errors = body.get("errors") if isinstance(body, dict) else None
    assert isinstance(body, dict) and body.get("success") is False and body.get("result") is None and errors, (
        f"customer {customer!r}: the 400 is not R2's error envelope: {body}")
    assert all(isinstance(e, dict) and isinstance(e.get("code"), int) and e.get("message") for e in errors), (
        f"customer {customer!r}: R2 errors are {{code: int, message: str}}: {errors}")
    assert "customer" in " ".join(str(e["message"]) for e in errors).lower(), (
        f"customer {customer!r}: the message does not say the customer id is what is wrong: {errors}")
