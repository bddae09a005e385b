"""A provider's own credential API, in Cloudflare R2's request and response shape (kind ``http``).

Create: ``POST {base}/client/v4/accounts/{customer}/r2/temp-access-credentials`` with a bearer token and
``{"bucket", "prefixes": [prefix], "permission", "ttlSeconds"}``; the answer is
``{"result": {"accessKeyId", "secretAccessKey", "sessionToken"}, "success": true, "errors": [], "messages": []}``.
R2 returns no expiry and no id: when the service adds ``expiresAt`` and ``id`` to ``result`` (the reference
service does) they are used, otherwise the expiry is computed from ``ttlSeconds`` and the access key is the id.
Revoke: ``DELETE .../temp-access-credentials/{id}``. Cleanup (the cron endpoint):
``POST .../temp-access-credentials/cleanup`` for one customer or ``POST {base}/client/v4/r2/temp-access-credentials/cleanup``
for all, with an optional ``{"now": <epoch>}``; the answer's ``result.deleted`` lists the ids. When some deletions
fail the answer is an error status whose ``result`` still has ``deleted`` and ``failed`` (``{id: why}``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from clusterproof.redact import REDACTOR, redact
from clusterproof.storage.model import IssuerError, Permission, ReapError, TempCredential, validate_customer

API_ROOT = "/client/v4"
R2_MAX_TTL_SECONDS = 604800


def credentials_path(customer: str) -> str:
    """The create/revoke/cleanup collection of one customer."""
    return f"{API_ROOT}/accounts/{quote(customer, safe='')}/r2/temp-access-credentials"


GLOBAL_CLEANUP_PATH = f"{API_ROOT}/r2/temp-access-credentials/cleanup"


class HttpIssuer:
    """Client of an R2-shaped credential service (kind ``http``)."""

    kind = "http"

    def __init__(self, base_url: str, token: str, *, max_ttl_seconds: int = R2_MAX_TTL_SECONDS,
                 timeout_s: float = 30.0) -> None:
        """Raises ValueError for an empty base URL or token."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {base_url!r}: expected an http:// or https:// URL")
        if not token:
            raise ValueError("the credential service token must not be empty")
        REDACTOR.add(token)
        self.base_url = base_url.rstrip("/")
        self.max_ttl_seconds = max_ttl_seconds
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"HttpIssuer({self.base_url!r})"

    def issue(
        self, customer: str, bucket: str, prefix: str, ttl_seconds: int, permission: Permission = "object-read-write"
    ) -> TempCredential:
        """Ask the service for a credential. Input is checked by the service, not here: the suites must see
        whether the provider's API itself rejects a ``*`` prefix or a zero TTL.

        The customer id is checked here too: it becomes part of the URL.

        Raises:
            ValueError: a customer id outside ``[a-z0-9-]``, or the service answered 400 (bad input; it must
                have created nothing).
            IssuerError: the service failed, refused the token, or answered something that is not R2's shape.
        """
        return self.issue_unchecked(validate_customer(customer), bucket, prefix, ttl_seconds, permission)

    def issue_unchecked(
        self, customer: str, bucket: str, prefix: str, ttl_seconds: int, permission: Permission = "object-read-write"
    ) -> TempCredential:
        """``issue`` without the local check of the customer id (URL-quoted instead), so a suite can see whether the
        service itself refuses ``acme_corp`` or ``acme/corp``. Raises like ``issue``."""
        body = {"bucket": bucket, "prefixes": [prefix], "permission": permission, "ttlSeconds": ttl_seconds}
        asked_at = datetime.now(UTC).replace(microsecond=0)
        result = self._call("POST", credentials_path(customer), body)
        try:
            access_key, secret = str(result["accessKeyId"]), str(result["secretAccessKey"])
        except (KeyError, TypeError):
            raise IssuerError(f"{self.base_url}: the answer has no accessKeyId/secretAccessKey") from None
        token = result.get("sessionToken") or None
        for value in (access_key, secret, token):
            REDACTOR.add(value)  # registered the moment they arrive, before anything could log them
        expires_at = asked_at + timedelta(seconds=int(ttl_seconds))
        if result.get("expiresAt"):
            expires_at = datetime.fromisoformat(str(result["expiresAt"]).replace("Z", "+00:00")).astimezone(UTC)
        return TempCredential(
            id=str(result.get("id") or access_key), access_key_id=access_key, secret_access_key=secret,
            session_token=token, expires_at=expires_at, customer=customer, bucket=bucket,
            prefix=str(result.get("prefix") or (prefix if prefix.endswith("/") else prefix + "/")),
            permission=permission, issuer=self.kind,
        )

    def revoke(self, credential: TempCredential) -> None:
        """Delete the credential through the service; one that is already gone is not an error."""
        self._call("DELETE", f"{credentials_path(credential.customer)}/{quote(credential.id, safe='')}", None,
                   missing_ok=True)

    def reap(self, customer: str | None = None, now: datetime | None = None) -> list[str]:
        """Call the cleanup endpoint for ``customer`` (all customers when None).

        Returns:
            The ids the service deleted.
        Raises:
            ReapError: the service deleted some but failed on others (it answered an error whose ``result`` still
                has ``deleted``, and ``failed`` as ``{id: why}``); the error's ``deleted`` keeps those ids.
            IssuerError: the service failed without saying what it deleted.
        """
        path = GLOBAL_CLEANUP_PATH if customer is None else credentials_path(validate_customer(customer)) + "/cleanup"
        body = {"now": now.timestamp()} if now is not None else {}
        try:
            result = self._call("POST", path, body)
        except _Failed as e:
            partial = e.payload.get("result") if isinstance(e.payload, dict) else None
            if isinstance(partial, dict) and isinstance(partial.get("deleted"), list):
                failed = partial.get("failed")
                failed = failed if isinstance(failed, dict) else {}
                raise ReapError(f"{self.base_url} cleanup", [str(x) for x in partial["deleted"]],
                                {str(k): redact(str(v)) for k, v in failed.items()} or {"?": str(e)}) from None
            raise
        return [str(x) for x in (result or {}).get("deleted", [])]

    def _call(self, method: str, path: str, body: dict[str, Any] | None, missing_ok: bool = False) -> Any:
        url = self.base_url + path
        try:
            resp = self._session.request(method, url, json=body, timeout=self.timeout_s)
        except requests.RequestException as e:
            raise IssuerError(f"{method} {url}: {type(e).__name__}: {redact(str(e))}") from None
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        errors = payload.get("errors", []) if isinstance(payload, dict) else []
        messages = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code == 400:
            raise ValueError(redact(messages or f"{method} {url}: 400 Bad Request"))
        if resp.status_code >= 300 or not isinstance(payload, dict) or not payload.get("success"):
            detail = redact(messages or resp.text[:300])
            raise _Failed(f"{method} {url}: HTTP {resp.status_code}: {detail}", payload)
        return payload.get("result")


class _Failed(IssuerError):
    """The service answered an error; ``payload`` is its JSON body (None when it sent none)."""

    def __init__(self, message: str, payload: Any) -> None:
        super().__init__(message)
        self.payload = payload
