"""The reference credential service (R2's shape) over RgwUserIssuer, and HttpIssuer as its client, on a real RGW."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from clusterproof.errors import ClusterproofError
from clusterproof.redact import MASK, REDACTOR
from clusterproof.sandbox.rgw import RgwInfo
from clusterproof.storage import HttpIssuer, ReapError, RgwAdminSession, RgwUserIssuer, s3_client
from clusterproof.storage.cleanup import temp_ids
from clusterproof.storage.matrix import ALLOW, DENY, attempt
from clusterproof.storage.service import (
    ACCESS_KEY_ENV,
    ENDPOINT_ENV,
    SECRET_KEY_ENV,
    TOKEN_ENV,
    RunningService,
    create_app,
    serve_from_env,
    service_settings_from_env,
    start_in_thread,
)
from tests.rgw_fixture import foreign_owner, rgw, rgw_admin, rgw_bucket  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "test-token-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def service(rgw: RgwInfo) -> Iterator[RunningService]:  # noqa: F811
    """Yields: the service on a free port, in a thread of this process. Scope: module. Cleans up: stops it."""
    issuer = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key)
    running = start_in_thread(create_app(issuer, TOKEN))
    yield running
    running.stop()


def _url(service: RunningService, customer: str, tail: str = "") -> str:
    return f"{service.url}/client/v4/accounts/{quote(customer, safe='')}/r2/temp-access-credentials{tail}"


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


@pytest.mark.parametrize("customer", ["svc_bad", "Svc-bad", "svc.bad", "", "-svc-bad", "svc-bad-", "s" * 33,
                                      "svc bad", "svc-bad/x", "svc-bad$x", "svc-bad%2fx"])
def test_s3_service_itself_refuses_bad_customer_with_400(service: RunningService, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, customer: str) -> None:  # noqa: F811
    """Raw POST with the token, past HttpIssuer's own check: the service must answer 400 in R2's envelope (also for
    an empty customer or one with '/', which no plain router pattern would even match) and create nothing."""
    bucket = rgw_bucket()
    before = set(rgw_admin.user_ids()) | set(rgw_admin.role_names())
    resp = requests.post(_url(service, customer), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                         json={"bucket": bucket, "prefixes": ["data/"], "permission": "object-read-only", "ttlSeconds": 60})
    body = resp.json()
    assert resp.status_code == 400, (resp.status_code, body)
    assert body["success"] is False and body["result"] is None and body["messages"] == [], body
    assert [type(e["code"]) for e in body["errors"]] == [int] and "customer" in body["errors"][0]["message"], body
    assert set(rgw_admin.user_ids()) | set(rgw_admin.role_names()) == before


def test_s3_http_issuer_registers_access_key_id(service: RunningService, rgw_bucket: Callable[[], str]) -> None:  # noqa: F811
    issuer = HttpIssuer(service.url, TOKEN)
    cred = issuer.issue("svc-redact", rgw_bucket(), "data/", 600)
    try:
        assert REDACTOR.redact(f"key={cred.access_key_id}.") == f"key={MASK}."
        assert cred.access_key_id not in repr(cred) and cred.access_key_id[:4] + "***" in repr(cred)
    finally:
        issuer.revoke(cred)


def test_s3_service_partial_reap_answers_deleted_and_failed(rgw: RgwInfo, rgw_bucket: Callable[[], str], rgw_admin: RgwAdminSession, foreign_owner: tuple[str, str]) -> None:  # noqa: F811
    """A reap that fails on one credential (its bucket's owner lost its key, so the bucket-policy rewrite fails)
    still deletes the others; the service says which (502, result.deleted/failed) and HttpIssuer raises ReapError
    with the deleted ids."""
    owner_uid, owner_key = foreign_owner
    backend = RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style="bucket-policy")
    running = start_in_thread(create_app(backend, TOKEN))
    try:
        issuer = HttpIssuer(running.url, TOKEN)
        stuck = issuer.issue("svc-partial", owner_uid, "data/", 60)
        fine = [issuer.issue("svc-partial", rgw_bucket(), f"p{i}/", 60) for i in range(2)]
        rgw_admin.rgw.remove_key(access_key=owner_key, uid=owner_uid)
        later = stuck.expires_at + timedelta(seconds=5)
        with pytest.raises(ReapError) as raised:
            issuer.reap("svc-partial", now=later)
        assert sorted(raised.value.deleted) == sorted(c.id for c in fine), raised.value
        assert list(raised.value.failures) == [stuck.id], raised.value
        assert temp_ids(rgw_admin, "svc-partial") == [stuck.id]
    finally:
        running.stop()
        if not rgw_admin.user_keys(owner_uid):
            rgw_admin.rgw.create_key(uid=owner_uid)
        RgwUserIssuer(rgw.endpoint, rgw.admin_access_key, rgw.admin_secret_key, grant_style="bucket-policy").purge("svc-partial")
    assert temp_ids(rgw_admin, "svc-partial") == []


_GOOD_ENV = {ENDPOINT_ENV: "http://127.0.0.1:7480", ACCESS_KEY_ENV: "AKIDSERVETEST", SECRET_KEY_ENV: "serve-secret",
             TOKEN_ENV: "serve-token"}


@pytest.mark.parametrize("env, named", [
    ({ENDPOINT_ENV: "ftp://x"}, ENDPOINT_ENV), ({ENDPOINT_ENV: "http://"}, ENDPOINT_ENV),
    ({ENDPOINT_ENV: "http://host:port"}, ENDPOINT_ENV), ({ENDPOINT_ENV: "127.0.0.1:7480"}, ENDPOINT_ENV),
    ({ENDPOINT_ENV: "http://h:1/admin"}, ENDPOINT_ENV), ({ENDPOINT_ENV: ""}, ENDPOINT_ENV),
    ({ACCESS_KEY_ENV: ""}, ACCESS_KEY_ENV), ({SECRET_KEY_ENV: None}, SECRET_KEY_ENV), ({TOKEN_ENV: " "}, TOKEN_ENV),
])
def test_s3_serve_from_env_names_the_bad_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None], named: str) -> None:
    for name, value in (_GOOD_ENV | env).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ClusterproofError, match=named):
        service_settings_from_env()
    with pytest.raises(ClusterproofError, match=named):
        serve_from_env(port=0)  # refused before anything is served


def test_s3_serve_from_env_accepts_a_good_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _GOOD_ENV.items():
        monkeypatch.setenv(name, value)
    assert service_settings_from_env() == _GOOD_ENV
    with pytest.raises(ClusterproofError, match="port"):
        service_settings_from_env(port=70000)
    with pytest.raises(ClusterproofError, match="grant style"):
        service_settings_from_env(grant_style="acl")


def test_s3_cli_serve_credentials_bad_endpoint_is_one_clear_line() -> None:
    """What the reviewer ran: the CLI with CP_RGW_ENDPOINT=ftp://x printed a bare ValueError traceback."""
    env = {**os.environ, **_GOOD_ENV, ENDPOINT_ENV: "ftp://x"}
    proc = subprocess.run([sys.executable, "-m", "clusterproof.cli", "serve-credentials", "--port", "0"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert ENDPOINT_ENV in proc.stderr and "ftp://x" in proc.stderr and proc.stderr.startswith("clusterproof: "), proc.stderr
