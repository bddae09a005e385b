"""The reference credential service: R2's temporary-credentials API (see ``clusterproof.storage.http``) over any issuer,
normally an RgwUserIssuer, so the ``http`` issuer kind is tested against something real.

Run it with ``clusterproof serve-credentials --host 127.0.0.1 --port 7499`` (the one entry point: ``serve_from_env``
behind it); the RGW endpoint and admin keys come from ``CP_RGW_ENDPOINT``, ``CP_RGW_ADMIN_ACCESS_KEY`` and
``CP_RGW_ADMIN_SECRET_KEY``, the bearer token from ``CP_CREDENTIALS_TOKEN``.

The customer id is taken from the path as it arrives (``{customer:path}``: also empty, or with a ``/``) and
validated by the issuer, so a bad customer gets the service's own 400 in R2's shape, not a router's 404.
"""

from __future__ import annotations

import hmac
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args
from urllib.parse import urlsplit

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse

from clusterproof.errors import ClusterproofError
from clusterproof.redact import REDACTOR, redact
from clusterproof.storage import names
from clusterproof.storage.http import API_ROOT, GLOBAL_CLEANUP_PATH
from clusterproof.storage.model import CredentialIssuer, IssuerError, ReapError, TempCredential
from clusterproof.storage.rgw_user import GrantStyle, RgwUserIssuer

ENDPOINT_ENV = "CP_RGW_ENDPOINT"
ACCESS_KEY_ENV = "CP_RGW_ADMIN_ACCESS_KEY"
SECRET_KEY_ENV = "CP_RGW_ADMIN_SECRET_KEY"
TOKEN_ENV = "CP_CREDENTIALS_TOKEN"
# ":path" so an empty customer or one with "/" reaches the handler (and its 400) instead of matching no route.
_ACCOUNT_PATH = API_ROOT + "/accounts/{customer:path}/r2/temp-access-credentials"
_ALLOWED_FIELDS = {"bucket", "prefixes", "permission", "ttlSeconds", "parentAccessKeyId", "objects"}


def _envelope(result: Any = None, errors: Sequence[str] = (), status: int = 200) -> JSONResponse:
    body = {
        "result": result,
        "success": not errors,
        "errors": [{"code": 10000 + status, "message": redact(e)} for e in errors],
        "messages": [],
    }
    return JSONResponse(body, status_code=status)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(issuer: CredentialIssuer, token: str) -> FastAPI:
    """The FastAPI app serving ``issuer`` to callers that present ``Authorization: Bearer <token>``.

    Raises:
        ValueError: the token is empty.
    """
    if not token:
        raise ValueError("the service token must not be empty")
    REDACTOR.add(token)
    app = FastAPI(title="clusterproof reference credential service", docs_url=None, redoc_url=None)

    def authorised(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise _ApiError(401, "Authentication error: missing or wrong bearer token")

    @app.exception_handler(_ApiError)
    async def _api_error(_: Request, exc: _ApiError) -> JSONResponse:
        return _envelope(errors=[str(exc)], status=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _envelope(errors=[f"malformed request: {exc.errors()[:3]}"], status=400)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _envelope(errors=[str(exc.detail)], status=exc.status_code)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"success": True, "kind": issuer.kind}

    @app.post(_ACCOUNT_PATH, dependencies=[Depends(authorised)])
    def create(customer: str, body: dict[str, Any]) -> JSONResponse:
        prefix = _one_prefix(body)
        cred = _issuer_call(lambda: issuer.issue(customer, body["bucket"], prefix, body["ttlSeconds"],
                                                 body["permission"]))
        return _envelope({
            "accessKeyId": cred.access_key_id,
            "secretAccessKey": cred.secret_access_key,
            "sessionToken": cred.session_token,
            "expiresAt": cred.expires_at.isoformat().replace("+00:00", "Z"),
            "id": cred.id,
            "prefix": cred.prefix,
        })

    @app.delete(_ACCOUNT_PATH + "/{credential_id}", dependencies=[Depends(authorised)])
    def revoke(customer: str, credential_id: str) -> JSONResponse:
        name = names.decode_uid(credential_id) or names.decode_role_name(credential_id)
        if name is None or name.customer != customer:
            raise _ApiError(404, f"no credential {credential_id!r} for customer {customer!r}")
        cred = TempCredential(id=credential_id, access_key_id="", secret_access_key="", session_token=None,
                              expires_at=datetime.fromtimestamp(name.expires_epoch, UTC), customer=customer,
                              bucket="", prefix="", permission="object-read-only", issuer=issuer.kind)
        _issuer_call(lambda: issuer.revoke(cred))
        return _envelope({"id": credential_id})

    @app.post(_ACCOUNT_PATH + "/cleanup", dependencies=[Depends(authorised)])
    def cleanup(customer: str, body: dict[str, Any] | None = None) -> JSONResponse:
        now = _now(body)
        return _reap(lambda: issuer.reap(customer, now))

    @app.post(GLOBAL_CLEANUP_PATH, dependencies=[Depends(authorised)])
    def cleanup_all(body: dict[str, Any] | None = None) -> JSONResponse:
        now = _now(body)
        return _reap(lambda: issuer.reap(None, now))

    return app


def _one_prefix(body: dict[str, Any]) -> str:
    unknown = set(body) - _ALLOWED_FIELDS
    if unknown:
        raise _ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    missing = {"bucket", "permission", "ttlSeconds"} - set(body)
    if missing:
        raise _ApiError(400, f"missing field(s): {', '.join(sorted(missing))}")
    if body.get("objects"):
        raise _ApiError(400, "objects: exact-key grants are not offered by this service; use prefixes")
    prefixes = body.get("prefixes")
    if not isinstance(prefixes, list) or len(prefixes) != 1 or not isinstance(prefixes[0], str):
        raise _ApiError(400, "prefixes: expected exactly one prefix (whole-bucket grants are not offered)")
    return prefixes[0]


def _now(body: dict[str, Any] | None) -> datetime | None:
    value = (body or {}).get("now")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _ApiError(400, f"now: expected a Unix time in seconds, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _reap(fn: Callable[[], list[str]]) -> JSONResponse:
    """Run a reap. When some deletions fail the answer is 502 and still lists what was deleted:
    ``result: {"deleted": [...], "failed": {id: why}}`` (``HttpIssuer.reap`` raises it as ReapError)."""
    try:
        deleted = _issuer_call(fn)
    except _ReapFailed as e:
        failed = {name: redact(why) for name, why in e.error.failures.items()}
        return _envelope({"deleted": e.error.deleted, "failed": failed}, errors=[str(e.error)], status=502)
    return _envelope({"deleted": deleted})


class _ReapFailed(Exception):
    def __init__(self, error: ReapError) -> None:
        super().__init__(str(error))
        self.error = error


def _issuer_call(fn: Any) -> Any:
    try:
        return fn()
    except ValueError as e:
        raise _ApiError(400, str(e)) from None
    except ReapError as e:
        raise _ReapFailed(e) from None
    except IssuerError as e:
        raise _ApiError(502, f"storage service error: {e}") from None


# --- running it -----------------------------------------------------------------------------------------------


@dataclass
class RunningService:
    """A service started by ``start_in_thread``; ``stop()`` ends it."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> RunningService:
    """Serve ``app`` from a background thread of this process (port 0: a free port). Used by tests and demos.

    Raises:
        OSError: the address cannot be bound.
        RuntimeError: the server did not come up within 10 s.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="cp-credential-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the credential service did not start on {host}:{bound_port}")
        time.sleep(0.02)
    return RunningService(url=f"http://{host}:{bound_port}", server=server, thread=thread)


#: On SIGTERM the server stops accepting, lets in-flight requests finish for up to this long, then exits.
GRACEFUL_SHUTDOWN_S = 30


def serve(host: str, port: int, issuer: CredentialIssuer, token: str) -> None:
    """Serve ``issuer`` in the foreground until interrupted; SIGTERM is a graceful shutdown (in-flight requests
    finish, idle keep-alive connections are closed), so replicas behind a load balancer restart without a
    failed request."""
    uvicorn.run(create_app(issuer, token), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)


def serve_from_env(host: str = "127.0.0.1", port: int = 7499, grant_style: GrantStyle = "user-policy") -> None:
    """Serve an RgwUserIssuer built from ``CP_RGW_ENDPOINT``, ``CP_RGW_ADMIN_ACCESS_KEY``,
    ``CP_RGW_ADMIN_SECRET_KEY`` with the bearer token ``CP_CREDENTIALS_TOKEN``, until interrupted.

    Raises:
        ClusterproofError: a variable is missing or empty, the endpoint is not an ``http(s)://host[:port]`` URL,
            or the port or grant style is invalid; the message names the variable or setting (the CLI prints it
            without a traceback).
    """
    values = service_settings_from_env(port, grant_style)
    issuer = RgwUserIssuer(values[ENDPOINT_ENV], values[ACCESS_KEY_ENV], values[SECRET_KEY_ENV],
                           grant_style=grant_style)
    print(f"clusterproof: credential service for {values[ENDPOINT_ENV]} on http://{host}:{port}", file=sys.stderr)
    serve(host, port, issuer, values[TOKEN_ENV])


def service_settings_from_env(port: int = 7499, grant_style: str = "user-policy") -> dict[str, str]:
    """Read and check what ``serve_from_env`` needs, before anything starts.

    Returns:
        The four variables' values by name.
    Raises:
        ClusterproofError: the first problem found, naming the variable or setting.
    """
    values = {name: os.environ.get(name, "") for name in (ENDPOINT_ENV, ACCESS_KEY_ENV, SECRET_KEY_ENV, TOKEN_ENV)}
    missing = [name for name, value in values.items() if not value.strip()]  # values kept as given: secrets
    if missing:
        raise ClusterproofError(f"serve-credentials: set {', '.join(missing)} in the environment "
                                f"(the RGW endpoint, its admin keys and the service's bearer token)")
    endpoint = values[ENDPOINT_ENV]
    parts = urlsplit(endpoint)
    try:
        endpoint_port = parts.port
    except ValueError:
        endpoint_port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or endpoint_port == -1:
        raise ClusterproofError(f"serve-credentials: {ENDPOINT_ENV}={endpoint!r} is not an RGW endpoint; "
                                "expected http://host:port or https://host:port")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ClusterproofError(f"serve-credentials: {ENDPOINT_ENV}={endpoint!r}: expected no path, query or "
                                "fragment (just http://host:port)")
    if not 0 <= port <= 65535:
        raise ClusterproofError(f"serve-credentials: port {port} is not a TCP port (0-65535)")
    if grant_style not in get_args(GrantStyle):
        raise ClusterproofError(f"serve-credentials: grant style {grant_style!r}: expected one of "
                                f"{', '.join(get_args(GrantStyle))}")
    return values
