"""reap / purge / list_ids for issuers whose temporary principals carry customer and expiry in their names.

No database: every decision is read off the principal's name (``names.TempName``), so the RGW-user issuer (uids)
and the STS issuer (role names) share this code and differ only in how names are listed, decoded and deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from clusterproof.s3.model import validate_customer
from clusterproof.s3.names import TempName


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
        """Delete the expired temporary principals of ``customer`` (every customer when None) as of ``now``.

        Returns:
            The names this call deleted. Two reapers in one process never both list a name; reapers in
            different processes may (RGW confirms concurrent deletes to both).
        """
        if customer is not None:
            validate_customer(customer)
        epoch = (now or datetime.now(UTC)).timestamp()
        return self._sweep(lambda n: (customer is None or n.customer == customer) and n.expires_epoch <= epoch)

    def purge(self, customer_prefix: str) -> list[str]:
        """Delete every temporary principal whose customer id starts with ``customer_prefix``, expired or not.

        For test cleanup; an empty prefix is refused so a typo cannot wipe every customer.

        Raises:
            ValueError: ``customer_prefix`` is empty.
        """
        if not customer_prefix:
            raise ValueError("purge needs a non-empty customer prefix")
        return self._sweep(lambda n: n.customer.startswith(customer_prefix))

    def list_ids(self, customer_prefix: str = "") -> list[str]:
        """The names of the temporary principals whose customer starts with ``customer_prefix``."""
        return [name for name in self._principal_names() if (n := self._decode_name(name)) and n.customer.startswith(customer_prefix)]

    def _sweep(self, selected: Callable[[TempName], bool]) -> list[str]:
        deleted = []
        for name in list(self._principal_names()):
            decoded = self._decode_name(name)
            if decoded is not None and selected(decoded) and self._delete_principal(name):
                deleted.append(name)
        return deleted
