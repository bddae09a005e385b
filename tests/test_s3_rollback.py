"""roll_back: an undo retried while RGW is away, within a budget, and never swallowing a bug."""

from __future__ import annotations

import pytest

from clusterproof.storage.model import IssuerError
from clusterproof.storage.rollback import roll_back, undone_on_failure


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


def _outage() -> IssuerError:
    return IssuerError("http://127.0.0.1:1: put user policy: ConnectionError refused")


def test_a_failed_block_is_undone_and_its_own_error_raised() -> None:
    undone: list[int] = []
    with pytest.raises(IssuerError) as raised, undone_on_failure(lambda: undone.append(1), "u is left"):
        raise _outage()
    assert undone == [1] and "undoing failed" not in str(raised.value)


def test_an_undo_that_fails_too_is_said_with_what_is_left() -> None:
    def undo() -> None:
        raise IssuerError("delete user u: refused again")

    with pytest.raises(IssuerError) as raised, undone_on_failure(undo, "u is left until 2026-12-02", budget_s=0):
        raise _outage()
    text = str(raised.value)
    assert "put user policy" in text and "refused again" in text and "u is left until 2026-12-02" in text, text


def test_a_caller_mistake_keeps_its_type_after_the_undo() -> None:
    undone: list[int] = []
    with pytest.raises(ValueError, match="ttl"), undone_on_failure(lambda: undone.append(1), "u is left"):
        raise ValueError("ttl_seconds 3: refused")
    assert undone == [1]


def test_an_interrupt_gets_one_undo_and_no_retries() -> None:
    calls: list[int] = []

    def undo() -> None:
        calls.append(1)

    with pytest.raises(KeyboardInterrupt), undone_on_failure(undo, "u is left"):
        raise KeyboardInterrupt
    assert calls == [1]


def test_a_block_that_works_undoes_nothing() -> None:
    undone: list[int] = []
    with undone_on_failure(lambda: undone.append(1), "u is left"):
        pass
    assert undone == []
