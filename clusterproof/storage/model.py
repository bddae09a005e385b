"""The credential every issuer returns, the issuer interface, and validation of what callers ask for.

Validation happens before anything is created: bad input raises ValueError naming the field and the rule.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from clusterproof.errors import ClusterproofError
from clusterproof.redact import REDACTOR
from clusterproof.storage.names import validate_customer

Permission = Literal["object-read-write", "object-read-only"]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)
PREFIX_MAX_BYTES = 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# '*' and '?' are policy wildcards, '$' starts a policy variable (${aws:username}); '"' and '\' have no business in
# a prefix and are where injection into hand-built JSON would start.
_FORBIDDEN_PREFIX_CHARS = frozenset('*?$"\\')

__all__ = [
    "PERMISSIONS",
    "CredentialIssuer",
    "IssuerError",
    "ReapError",
    "Permission",
    "TempCredential",
    "normalise_prefix",
    "validate_bucket",
    "validate_customer",
    "validate_permission",
    "validate_ttl",
]


class IssuerError(ClusterproofError):
    """The storage service refused or failed an issuer operation (not a caller mistake: those are ValueError)."""


class ReapError(IssuerError):
    """A reap or purge deleted what it could but some deletions failed.

    Attributes:
        deleted: the ids this call *did* delete (what ``reap`` would have returned) -- not lost with the error.
        failures: id -> why its deletion failed (already redacted).
    """

    def __init__(self, what: str, deleted: list[str], failures: dict[str, str]) -> None:
        self.what = what
        self.deleted = list(deleted)
        self.failures = dict(failures)
        listed = "; ".join(f"{name}: {why}" for name, why in self.failures.items())
        super().__init__(
            f"{what}: {len(self.failures)} deletion(s) failed ({listed}); "
            f"deleted {len(self.deleted)}: {', '.join(self.deleted) or 'none'}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (xdist, multiprocessing) despite the custom __init__
        return (type(self), (self.what, self.deleted, self.failures))


def mask_key_id(access_key_id: str) -> str:
    """An access key id as ``repr`` shows it: the first 4 characters and ``***`` (enough to tell keys apart)."""
    return f"{access_key_id[:4]}***" if access_key_id else ""


@dataclass(frozen=True)
class TempCredential:
    """A temporary S3 credential scoped to one bucket and prefix. ``repr`` hides the secret and the token and shows
    only the first 4 characters of the access key id; all three are registered with the redactor.

    ``id`` is what ``revoke`` and ``reap`` name: the RGW uid, the IAM role name, or the provider's id.
    """

    id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(repr=False)
    expires_at: datetime
    customer: str
    bucket: str
    prefix: str
    permission: Permission
    issuer: str = ""

    def __post_init__(self) -> None:
        # Every path that mints or receives a credential builds this object, so registering here covers all of
        # them (the issuers also register right where the keys arrive, before anything could log them).
        REDACTOR.add(self.access_key_id)
        REDACTOR.add(self.secret_access_key)
        REDACTOR.add(self.session_token)

    def __repr__(self) -> str:
        token = "'***'" if self.session_token else "None"
        # An R2 service that returns no id makes the access key the id: mask it there too.
        shown_id = mask_key_id(self.id) if self.id == self.access_key_id else self.id
        return (
            f"TempCredential(id={shown_id!r}, access_key_id={mask_key_id(self.access_key_id)!r}, secret_access_key='***', "
            f"session_token={token}, expires_at={self.expires_at.isoformat()!r}, customer={self.customer!r}, "
            f"bucket={self.bucket!r}, prefix={self.prefix!r}, permission={self.permission!r}, issuer={self.issuer!r})"
        )

    __str__ = __repr__

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``clusterproof.storage.client.s3_client``: access key, secret and token."""
        return {
            "access_key": self.access_key_id,
            "secret_key": self.secret_access_key,
            "session_token": self.session_token or None,
        }


@runtime_checkable
class CredentialIssuer(Protocol):
    """What every kind of issuer offers (rgw-user, sts, http)."""

    kind: str
    max_ttl_seconds: int

    def issue(
        self, customer: str, bucket: str, prefix: str, ttl_seconds: int, permission: Permission = "object-read-write"
    ) -> TempCredential:
        """Mint a credential for ``bucket``/``prefix`` that expires after ``ttl_seconds``.

        Raises:
            ValueError: bad input (nothing is created).
            IssuerError: the service refused or failed (whatever was created is rolled back).
        """
        ...

    def revoke(self, credential: TempCredential) -> None:
        """Delete the credential now; revoking one that is already gone is not an error."""
        ...

    def reap(self, customer: str | None = None, now: datetime | None = None) -> list[str]:
        """Delete the expired credentials of ``customer`` (all customers when None) as of ``now`` (default: now).

        Returns:
            The ids this call deleted (another reaper running at the same time may delete the rest).
            Running it again, or twice at once, is safe.
        Raises:
            ReapError: some deletions failed; every other expired credential was still deleted, and the
                error's ``deleted`` holds their ids.
            IssuerError: the credentials could not even be listed (nothing was deleted).
        """
        ...


def validate_permission(permission: object) -> Permission:
    """Return ``permission`` when it is one of PERMISSIONS.

    Raises:
        ValueError: anything else.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"permission {permission!r}: expected one of {', '.join(PERMISSIONS)}")
    return permission


def validate_ttl(ttl_seconds: object, max_ttl_seconds: int, kind: str) -> int:
    """Return ``ttl_seconds`` when it is an int in ``1..max_ttl_seconds``.

    Raises:
        ValueError: not an integer, zero, negative, or above the issuer kind's maximum.
    """
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise ValueError(f"ttl_seconds {ttl_seconds!r}: expected an integer number of seconds")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds {ttl_seconds}: must be positive")
    if ttl_seconds > max_ttl_seconds:
        raise ValueError(f"ttl_seconds {ttl_seconds}: above the {kind} issuer's maximum of {max_ttl_seconds} s")
    return ttl_seconds


def validate_bucket(bucket: object) -> str:
    """Return ``bucket`` when it is a valid S3 bucket name (existence is checked by the issuer).

    Raises:
        ValueError: not 3-63 characters of ``[a-z0-9.-]`` starting and ending with a letter or digit.
    """
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(f"bucket {bucket!r}: not a valid S3 bucket name (3-63 characters of a-z, 0-9, '.', '-')")
    return bucket


def normalise_prefix(prefix: object) -> str:
    """Return the prefix ending with ``/`` (a grant on ``data`` must never reach ``data2/``).

    Raises:
        ValueError: empty; over 1024 bytes; leading ``/``; a control character; ``*``, ``?``, ``$``, ``"`` or
            ``\\``; or a ``.``/``..``/empty path segment.
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix {prefix!r}: must be a non-empty string (whole-bucket grants are not offered)")
    if prefix.startswith("/"):
        raise ValueError(f"prefix {prefix!r}: must not start with '/' (S3 keys have no leading slash)")
    for ch in prefix:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ValueError(f"prefix {prefix!r}: control or format character U+{ord(ch):04X} is not allowed")
        if ch in _FORBIDDEN_PREFIX_CHARS:
            raise ValueError(f"prefix {prefix!r}: {ch!r} is not allowed (it is special in IAM policies)")
    normalised = prefix if prefix.endswith("/") else prefix + "/"
    for segment in normalised[:-1].split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"prefix {prefix!r}: empty, '.' or '..' path segments are not allowed")
    if len(normalised.encode()) > PREFIX_MAX_BYTES:
        raise ValueError(f"prefix: {len(normalised.encode())} bytes, above the maximum of {PREFIX_MAX_BYTES}")
    return normalised


@dataclass(frozen=True)
class GrantRequest:
    """An ``issue()`` request after validation, with the bucket's owner."""

    customer: str
    bucket: str
    prefix: str
    permission: Permission
    ttl_seconds: int
    owner: str


def checked_request(
    admin: Any, endpoint: str, kind: str, max_ttl_seconds: int, deny_anonymous_reads: bool,
    customer: object, bucket: object, prefix: object, permission: object, ttl_seconds: object,
) -> GrantRequest:
    """Validate an ``issue()`` request for the RGW-backed issuers and make sure its bucket is guarded.

    ``admin`` is the issuer's ``RgwAdminSession``. Nothing is created for bad input.

    Raises:
        ValueError: bad customer, bucket, prefix, permission or TTL, or the bucket does not exist.
    """
    req_customer = validate_customer(customer)
    req_bucket = validate_bucket(bucket)
    req_prefix = normalise_prefix(prefix)
    req_permission = validate_permission(permission)
    ttl = validate_ttl(ttl_seconds, max_ttl_seconds, kind)
    owner = admin.bucket_owner(req_bucket)
    if owner is None:
        raise ValueError(f"bucket {req_bucket!r}: does not exist on {endpoint}")
    admin.ensure_bucket_guard(req_bucket, deny_anonymous_reads, owner)
    return GrantRequest(req_customer, req_bucket, req_prefix, req_permission, ttl, owner)
