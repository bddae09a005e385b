"""reap / purge / list_ids for issuers whose temporary principals carry customer and expiry in their names.

No database: every decision is read off the principal's name (``names.TempName``), so the RGW-user issuer (uids)
and the STS issuer (role names) share this code and differ only in how names are listed, decoded and deleted.

Customers are selected by *scope* (``names.customer_in_scope``): a scope covers the customer id itself and every
id that extends it by a ``-`` segment, never ids that merely share leading characters (``g1`` is not ``g10``).

One failed deletion does not stop a sweep: the rest are still deleted, then one ``ReapError`` lists every failure
and carries the ids that were deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from clusterproof.redact import redact
from clusterproof.storage.model import IssuerError, ReapError, validate_customer
from clusterproof.storage.names import TempName, customer_in_scope, validate_scope


class NameSweeper:
    """Mixin: subclasses provide ``_principal_names``, ``_decode_name`` and ``_delete_principal``."""

    def _principal_names(self) -> Iterable[str]:
        raise NotImplementedError

    def _decode_name(self, name: str) -> TempName | None:
        raise NotImplementedError

    def _delete_principal(self, name: str) -> bool:
        """Delete one principal; False when it was already gone (another reaper got there first)."""
        raise NotImplementedError

    def reap(self, customer: str | None = None, now: datetime | None = None) -> list[str]:
        """Delete the expired temporary principals of exactly ``customer`` (every customer when None) as of ``now``.

        Returns:
            The names this call deleted. Two reapers in one process never both list a name; reapers in
            different processes may (RGW confirms concurrent deletes to both).
        Raises:
            ValueError: ``customer`` is not a valid customer id.
            ReapError: some deletions failed; all the others were done and are in the error's ``deleted``.
            IssuerError: the principals could not be listed (nothing was deleted).
        """
        if customer is not None:
            validate_customer(customer)
        epoch = (now or datetime.now(UTC)).timestamp()
        return self._sweep(f"reap {customer or 'all customers'}",
                           lambda n: (customer is None or n.customer == customer) and n.expires_epoch <= epoch)

    def purge(self, scope: str, expired_before: datetime | None = None) -> list[str]:
        """Delete every temporary principal whose customer is ``scope`` or ``scope-...``, expired or not (with
        ``expired_before``: only those whose expiry is at or before it).

        For test cleanup. The scope must itself be a valid customer id, so an empty or dangling (``cpt-``) scope
        cannot wipe every customer, and ``cpt-x-g1`` never reaches ``cpt-x-g10``'s principals.

        Returns:
            The names this call deleted.
        Raises:
            ValueError: ``scope`` is not a valid customer id.
            ReapError: some deletions failed; all the others were done and are in the error's ``deleted``.
            IssuerError: the principals could not be listed (nothing was deleted).
        """
        validate_scope(scope)
        cutoff = None if expired_before is None else expired_before.timestamp()
        return self._sweep(f"purge {scope}", lambda n: customer_in_scope(n.customer, scope)
                           and (cutoff is None or n.expires_epoch <= cutoff))

    def list_ids(self, scope: str | None = None) -> list[str]:
        """The names of the temporary principals whose customer is ``scope`` or ``scope-...`` (all when None).

        Raises:
            ValueError: ``scope`` is not a valid customer id.
            IssuerError: the principals could not be listed.
        """
        if scope is not None:
            validate_scope(scope)
        return [name for name in self._principal_names()
                if (n := self._decode_name(name)) and (scope is None or customer_in_scope(n.customer, scope))]

    def _sweep(self, what: str, selected: Callable[[TempName], bool]) -> list[str]:
        deleted: list[str] = []
        failures: dict[str, str] = {}
        for name in list(self._principal_names()):
            decoded = self._decode_name(name)
            if decoded is None or not selected(decoded):
                continue
            try:
                if self._delete_principal(name):
                    deleted.append(name)
            except Exception as e:  # noqa: BLE001 - one failure must not leave the others; all are raised below
                failures[name] = redact(str(e) if isinstance(e, IssuerError) else f"{type(e).__name__}: {e}")
        if failures:
            raise ReapError(f"{getattr(self, 'kind', type(self).__name__)} {what}", deleted, failures)
        return deleted
