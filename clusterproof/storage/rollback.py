"""Undo a half-made credential even while RGW is briefly away.

An issue that fails must leave nothing. When RGW restarts mid-issue the create may have been done with its answer
lost, and the first attempt to undo it meets a closed port; answering the caller before the undo lands lets the
caller's retry make a second credential beside the first (a duplicate, and a leftover). So the undo is retried,
within a budget that keeps the answer inside a client's timeout (``HttpIssuer`` waits 30 s).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from clusterproof.redact import redact
from clusterproof.storage.model import IssuerError

#: How long an undo is retried after RGW failed it (a sandbox radosgw restarts in about 2 s).
ROLLBACK_BUDGET_S = 15.0


def roll_back(undo: Callable[[], object], budget_s: float = ROLLBACK_BUDGET_S,
              sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str | None:
    """Run ``undo`` until it returns, retrying an ``IssuerError`` (RGW away or failing) for ``budget_s``.

    Returns:
        None when the undo ran; otherwise the last error, redacted, for the caller's message.
    Raises:
        whatever ``undo`` raises that is not an IssuerError (a bug, not an outage).
    """
    deadline = clock() + budget_s
    pause = 0.1
    while True:
        try:
            undo()
            return None
        except IssuerError as e:
            if clock() + pause > deadline:
                return redact(str(e))
            sleep(pause)
            pause = min(pause * 2, 1.0)


@contextlib.contextmanager
def undone_on_failure(undo: Callable[[], object], what_is_left: str,
                      budget_s: float = ROLLBACK_BUDGET_S) -> Iterator[None]:
    """Run the block; when it fails, undo with :func:`roll_back` and re-raise.

    An ``IssuerError`` whose undo failed too becomes one IssuerError that says so, with ``what_is_left`` (what
    stays behind and until when). An interrupt (KeyboardInterrupt, SystemExit) gets one undo attempt, no retries.
    """
    try:
        yield
    except Exception as exc:
        left = roll_back(undo, budget_s)
        if left is None or not isinstance(exc, IssuerError):
            raise
        raise IssuerError(f"{exc}; undoing failed too ({left}): {what_is_left}") from None
    except BaseException:
        undo()
        raise
