"""roll_back: an undo retried while RGW is away, within a budget, and never swallowing a bug."""

from __future__ import annotations

import pytest

from clusterproof.storage.model import IssuerError
from clusterproof.storage.rollback import roll_back


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, s: float) -> None:
        self.pauses.append(s)
        self.now += s


def _undo_failing(times: int, calls: list[int]) -> object:
    def undo() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise IssuerError(f"http://127.0.0.1:1: delete user u: ConnectionError refused #{len(calls)}")
    return undo


def test_undo_that_works_runs_once() -> None:
    calls: list[int] = []
    clock = _Clock()
    assert roll_back(_undo_failing(0, calls), 15, clock.sleep, lambda: clock.now) is None
    assert calls == [1] and clock.pauses == []


def test_undo_retried_until_rgw_answers_with_growing_pauses() -> None:
    calls: list[int] = []
    clock = _Clock()
    assert roll_back(_undo_failing(5, calls), 15, clock.sleep, lambda: clock.now) is None
    assert len(calls) == 6
    assert clock.pauses == [0.1, 0.2, 0.4, 0.8, 1.0]


def test_undo_gives_up_at_the_budget_and_says_why() -> None:
    calls: list[int] = []
    clock = _Clock()
    left = roll_back(_undo_failing(1000, calls), 3.0, clock.sleep, lambda: clock.now)
    assert left is not None and "refused" in left and f"#{len(calls)}" in left, left
    assert clock.now <= 3.0, "slept past the budget"
    assert sum(clock.pauses) > 2.0, "gave up long before the budget"


def test_a_bug_in_the_undo_is_not_retried() -> None:
    calls: list[int] = []

    def undo() -> None:
        calls.append(1)
        raise KeyError("keys")

    with pytest.raises(KeyError):
        roll_back(undo, 15, lambda s: None, lambda: 0.0)
    assert calls == [1]


def test_the_error_returned_is_redacted() -> None:
    from clusterproof.redact import MASK, REDACTOR

    secret = "cpSECRETrollback0123456789"
    REDACTOR.add(secret)

    def undo() -> None:
        raise IssuerError(f"delete user: answered with {secret}")

    left = roll_back(undo, 0.0, lambda s: None, lambda: 0.0)
    assert left is not None and secret not in left and MASK in left
