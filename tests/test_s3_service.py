"""The reference credential service (R2's shape) over RgwUserIssuer, and HttpIssuer as its client, on a real RGW."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from clusterproof.s3 import HttpIssuer, RgwAdminSession, RgwUserIssuer, s3_client
from clusterproof.s3.cleanup import temp_ids
from clusterproof.s3.matrix import ALLOW, DENY, attempt
from clusterproof.s3.service import RunningService, create_app, start_in_thread
from clusterproof.sandbox.rgw import RgwInfo
from tests.rgw_fixture import rgw, rgw_admin, rgw_bucket  # noqa: F401

TOKEN = "test-token-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def service(rgw: RgwInfo) -> Iterator[RunningService]:  # noqa: F811
    """Yields: the service on a free port, in a thread of this process. Scope: module. Cleans up: stops it."""
    issuer = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)
    running = start_in_thread(create_app(issuer, TOKEN))
    yield running
    running.stop()


def _url(service: RunningService, customer: str, tail: str = "") -> str:
    return f"{service.url}/client/v4/accounts/{customer}/r2/temp-access-credentials{tail}"


def test_s3_service_answers_in_r2_shape(service: RunningService, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    bucket = rgw_bucket()
    resp = requests.post(_url(service, "svc-acme"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                         json={"bucket": bucket, "prefixes": ["data"], "permission": "object-read-write", "ttlSeconds": 600})
    body = resp.json()
    assert resp.status_code == 200 and body["success"] is True and body["errors"] == [] and body["messages"] == []
    result = body["result"]
    assert {"accessKeyId", "secretAccessKey", "sessionToken"} <= set(result) and result["prefix"] == "data/"
    c = s3_client(rgw.endpoint, result["accessKeyId"], result["secretAccessKey"])
    assert attempt(lambda: c.put_object(Bucket=bucket, Key="data/x", Body=b"x")).observed == ALLOW
    assert attempt(lambda: c.put_object(Bucket=bucket, Key="data2/x", Body=b"x")).observed == DENY
    gone = requests.delete(_url(service, "svc-acme", f"/{result['id']}"), headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=30)
    assert gone.status_code == 200 and temp_ids(rgw_admin, "svc-acme") == []


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_s3_service_refuses_wrong_token(service: RunningService, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, header: str | None) -> None:  # noqa: F811
    headers = {"Authorization": header} if header else {}
    resp = requests.post(_url(service, "svc-auth"), headers=headers, timeout=30,
                         json={"bucket": rgw_bucket(), "prefixes": ["data/"], "permission": "object-read-only", "ttlSeconds": 60})
    assert resp.status_code == 401 and resp.json()["success"] is False
    assert temp_ids(rgw_admin, "svc-auth") == []


@pytest.mark.parametrize("body, complaint", [
    ({"prefixes": ["da*ta/"]}, "not allowed"), ({"prefixes": ["a/", "b/"]}, "exactly one prefix"),
    ({"prefixes": []}, "exactly one prefix"), ({"ttlSeconds": 0}, "positive"), ({"ttlSeconds": "60"}, "integer"),
    ({"permission": "admin-read-write"}, "permission"), ({"bucket": "cpt-missing-bucket"}, "does not exist"),
    ({"objects": ["data/x"]}, "objects"), ({"surprise": 1}, "unknown field"),
])
def test_s3_service_bad_request_is_400_and_creates_nothing(service: RunningService, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, body: dict[str, Any], complaint: str) -> None:  # noqa: F811
    request = {"bucket": rgw_bucket(), "prefixes": ["data/"], "permission": "object-read-only", "ttlSeconds": 60} | body
    resp = requests.post(_url(service, "svc-bad"), headers={"Authorization": f"Bearer {TOKEN}"}, json=request, timeout=30)
    payload = resp.json()
    assert resp.status_code == 400 and payload["success"] is False and payload["result"] is None
    assert complaint in payload["errors"][0]["message"], payload
    assert temp_ids(rgw_admin, "svc-bad") == []


def test_s3_service_revoke_only_within_the_customer(service: RunningService, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    issuer = HttpIssuer(service.url, TOKEN)
    cred = issuer.issue("svc-owner", rgw_bucket(), "data/", 600)
    other = requests.delete(_url(service, "svc-thief", f"/{cred.id}"), headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=30)
    assert other.status_code == 404 and temp_ids(rgw_admin, "svc-owner") == [cred.id]
    issuer.revoke(cred)
    assert temp_ids(rgw_admin, "svc-owner") == []


def test_s3_http_issuer_issue_reap_and_errors(service: RunningService, rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession) -> None:  # noqa: F811
    issuer = HttpIssuer(service.url, TOKEN)
    bucket = rgw_bucket()
    cred = issuer.issue("svc-reap", bucket, "data", 600)
    assert cred.prefix == "data/" and cred.id.startswith("cptmp_svc-reap_") and cred.issuer == "http"
    c = s3_client(rgw.endpoint, **cred.client_kwargs())
    assert attempt(lambda: c.list_objects_v2(Bucket=bucket, Prefix="data/")).observed == ALLOW
    assert issuer.reap("svc-reap") == []  # not expired yet
    assert issuer.reap("svc-reap", now=cred.expires_at) == [cred.id]
    assert attempt(lambda: c.list_objects_v2(Bucket=bucket, Prefix="data/")).observed == DENY
    with pytest.raises(ValueError, match="not allowed"):
        issuer.issue("svc-reap", bucket, "da?ta/", 600)
    with pytest.raises(ValueError, match="customer"):
        issuer.issue("svc_reap", bucket, "data/", 600)
    assert temp_ids(rgw_admin, "svc-reap") == []


def test_s3_service_missing_field_is_400(service: RunningService, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    resp = requests.post(_url(service, "svc-missing"), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                         json={"bucket": rgw_bucket(), "prefixes": ["data/"], "permission": "object-read-only"})
    assert resp.status_code == 400 and "missing field(s): ttlSeconds" in resp.json()["errors"][0]["message"]
