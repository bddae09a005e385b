"""Names of temporary credentials: the RGW uid (or IAM role name) carries customer and expiry, so the reaper
needs no database.

Layout, fixed: ``cptmp_<customer>_<expiry-epoch>_<nonce>`` for users and ``cptmp.<customer>.<expiry-epoch>.<nonce>``
for roles (RGW 16.2 rejects ``_`` in role names with HTTP 400). The customer alphabet is ``[a-z0-9-]``: it holds
neither separator, so the encoding is injective and a customer can never read as a prefix of another once
joined (``acme`` vs ``acme_corp``: the second is not a valid customer id; ``acme`` vs ``acme-corp`` differ at the
separator). Names stay URL-safe because rgwadmin builds its query strings without encoding them.

Scopes (``customer_in_scope``): cleanup and listing select the customers *of a scope* -- the customer id itself and
every id that extends it by a ``-`` segment -- never those that merely start with the same text. Test tags are
``cpt-<hash>-g1`` and ``cpt-<hash>-g10``: a plain ``startswith`` let worker g1 purge worker g10's live credentials.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

MARKER = "cptmp"
CUSTOMER_MAX_LEN = 32
_CUSTOMER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_NONCE_RE = r"[0-9a-f]{8}"
_USER_RE = re.compile(rf"^{MARKER}_(?P<customer>[a-z0-9-]{{1,32}})_(?P<epoch>[0-9]{{1,12}})_(?P<nonce>{_NONCE_RE})$")
_ROLE_RE = re.compile(rf"^{MARKER}\.(?P<customer>[a-z0-9-]{{1,32}})\.(?P<epoch>[0-9]{{1,12}})\.(?P<nonce>{_NONCE_RE})$")


@dataclass(frozen=True, order=True)
class TempName:
    """The fields a temporary credential's name carries."""

    customer: str
    expires_epoch: int
    nonce: str

    def uid(self) -> str:
        """The RGW user id: ``cptmp_<customer>_<epoch>_<nonce>``."""
        return f"{MARKER}_{self.customer}_{self.expires_epoch}_{self.nonce}"

    def role_name(self) -> str:
        """The IAM role name: ``cptmp.<customer>.<epoch>.<nonce>``."""
        return f"{MARKER}.{self.customer}.{self.expires_epoch}.{self.nonce}"


def validate_customer(customer: object) -> str:
    """Return ``customer`` when it is a safe customer id.

    Raises:
        ValueError: not 1-32 characters of ``[a-z0-9-]``, or starts or ends with ``-``.
    """
    if not isinstance(customer, str) or not _CUSTOMER_RE.match(customer):
        raise ValueError(
            f"customer {customer!r}: use 1-{CUSTOMER_MAX_LEN} characters of a-z, 0-9 and '-', "
            "not starting or ending with '-' (no '_' or '.': they separate the fields of temporary names)"
        )
    return customer


def validate_scope(scope: object) -> str:
    """Return ``scope`` when it can select customers: a valid customer id (so never empty, never ending in ``-``).

    Raises:
        ValueError: not a valid customer id; the message names the scope.
    """
    try:
        return validate_customer(scope)
    except ValueError:
        raise ValueError(
            f"customer scope {scope!r}: must itself be a valid customer id (1-{CUSTOMER_MAX_LEN} characters of a-z, "
            "0-9 and '-', not starting or ending with '-'); it selects that customer and '<scope>-...' customers"
        ) from None


def customer_in_scope(customer: str, scope: str) -> bool:
    """True when ``customer`` is ``scope`` or extends it by a ``-`` segment (``scope-...``).

    ``cpt-1a2b-g1`` covers ``cpt-1a2b-g1`` and ``cpt-1a2b-g1-0f3c9a`` but not ``cpt-1a2b-g10-...``: a boundary, not a
    text prefix, so no tag can reach into another tag that happens to start with the same characters.
    """
    return customer == scope or customer.startswith(scope + "-")


def new_name(customer: str, expires_epoch: int) -> TempName:
    """A fresh name with a random nonce (names are never reused: RGW keeps dangling policy principals).

    Raises:
        ValueError: the customer id is not safe or the epoch is negative.
    """
    validate_customer(customer)
    if expires_epoch < 0:
        raise ValueError(f"expiry epoch must be >= 0, got {expires_epoch}")
    return TempName(customer, int(expires_epoch), secrets.token_hex(4))


def decode_uid(uid: str) -> TempName | None:
    """Parse a temporary user's uid; None for any uid that is not exactly of our layout (never ours to delete)."""
    return _decode(_USER_RE, uid)


def decode_role_name(name: str) -> TempName | None:
    """Parse a temporary role's name; None for any other role."""
    return _decode(_ROLE_RE, name)


def _decode(pattern: re.Pattern[str], text: str) -> TempName | None:
    m = pattern.match(text)
    if not m or not _CUSTOMER_RE.match(m["customer"]):
        return None
    return TempName(m["customer"], int(m["epoch"]), m["nonce"])
