"""boto3 clients for RGW with the known traps handled once, and a reading of RGW's answers.

Traps (measured on RGW 16.2 with boto3 1.4x):

- ``Expect: 100-continue``: RGW answers an early 403 without draining the body, the keep-alive connection
  desyncs and the *next* PUT on it hangs until the read timeout. The header is dropped before every call.
- boto3 >= 1.36 adds CRC checksums by default, which RGW 16.2 does not all understand: only when required.
- boto3 validates ``DurationSeconds >= 900`` on the client; RGW's minimum is configurable: no client validation.
- RGW's IAM/STS error bodies are S3-style XML that boto3 often cannot parse (``Code: Unknown``, or no ``Error``
  at all, or a ResponseParserError when RGW appends an error document to a success document): ``answer_of``
  reads the HTTP status first.
- Path-style addressing: RGW in the sandbox has no wildcard DNS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from clusterproof.redact import REDACTOR

DEFAULT_REGION = "default"
#: Error codes that mean "refused": the credential is not (or no longer) allowed to do this.
DENIAL_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "ExpiredToken"})
#: Everything a boto3 call against RGW may raise for a service answer or a transport problem.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError, ResponseParserError)


#: One boto3 session for every client: it caches the parsed service models (a fresh session per client costs
#: ~0.1 s of CPU). Sessions are not thread-safe, so client creation holds a lock; the clients themselves are.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


def _config(timeout_s: float, anonymous: bool = False) -> Config:
    return Config(
        s3={"addressing_style": "path"},
        signature_version=UNSIGNED if anonymous else "s3v4",
        retries={"max_attempts": 1, "mode": "standard"},  # a denied request must be seen, not retried
        parameter_validation=False,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        tcp_keepalive=False,
    )


def _drop_expect_header(params: dict[str, Any], **_: Any) -> None:
    # Must return None: a non-None return from a before-call handler short-circuits the request.
    params.get("headers", {}).pop("Expect", None)


def make_client(
    service: str,
    endpoint: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    *,
    region: str = DEFAULT_REGION,
    timeout_s: float = 10.0,
    anonymous: bool = False,
) -> Any:
    """A boto3 client for ``service`` ("s3", "iam" or "sts") on ``endpoint``; access key, secret and token are
    registered for redaction.

    ``anonymous=True`` sends unsigned requests (what a browser or ``curl`` does with a public object).
    """
    for secret in (access_key, secret_key, session_token):
        REDACTOR.add(secret)
    with _SESSION_LOCK:
        client = _SESSION.client(
            service,
            endpoint_url=endpoint,
            aws_access_key_id=None if anonymous else access_key,
            aws_secret_access_key=None if anonymous else secret_key,
            aws_session_token=None if anonymous else session_token,
            region_name=region,
            config=_config(timeout_s, anonymous),
        )
    client.meta.events.register_last(f"before-call.{client.meta.service_model.endpoint_prefix}", _drop_expect_header)
    return client


def s3_client(endpoint: str, access_key: str | None = None, secret_key: str | None = None,
              session_token: str | None = None, **kwargs: Any) -> Any:
    """An S3 client (see ``make_client``)."""
    return make_client("s3", endpoint, access_key, secret_key, session_token, **kwargs)


@dataclass(frozen=True)
class Answer:
    """What RGW answered: HTTP status (None when no response arrived) and error code ("" on success)."""

    status: int | None
    code: str

    @property
    def denied(self) -> bool:
        """RGW refused the credential or the request: HTTP 403, or a refusal code whatever the status
        (``ExpiredToken`` is HTTP 400 on AWS)."""
        return self.status == 403 or self.code in DENIAL_CODES

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.code in ("NoSuchEntity", "NoSuchKey", "NoSuchBucket", "NoSuchUser")

    def __str__(self) -> str:
        return f"{self.status if self.status is not None else 'no response'} {self.code}".strip()


def answer_of(exc: BaseException) -> Answer:
    """Read an exception raised by a boto3 call as RGW's answer (status first; the code when boto3 parsed one)."""
    if isinstance(exc, ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = str((exc.response.get("Error") or {}).get("Code") or "")
        if code in ("", "Unknown", str(status)):
            code = {400: "BadRequest", 403: "AccessDenied", 404: "NotFound", 409: "Conflict"}.get(status or 0, code)
        return Answer(status, code)
    if isinstance(exc, ResponseParserError):
        # RGW sometimes appends an <Error> document to a success document; the code is still in the text.
        text = str(exc)
        for code, status in (("NoSuchEntity", 404), ("AccessDenied", 403), ("DeleteConflict", 409)):
            if f"<Code>{code}</Code>" in text:
                return Answer(status, code)
        return Answer(None, "UnparsableResponse")
    if isinstance(exc, BotoCoreError):
        return Answer(None, type(exc).__name__)
    return Answer(None, type(exc).__name__)
