"""The finding a test's pytest outcome adds when the test's own check did not say it: the safety net that keeps the
report and the exit status one judgement.

A test that fails without a failing finding (a fixture that could not connect, an exception in the suite, a teardown
that could not clean up) gives a failing finding; a test that passes, skips or xfails without recording anything
gives a pass, not tested or known limitation for the criterion its ``criterion`` marker names. A test with no
marker that recorded nothing adds nothing unless it failed (then :attr:`Criterion.TEST_ERRORS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, Status, Subject


def subject_of_test(test_id: str) -> Subject:
    return Subject("test", test_id)


def _first_line(text: str, limit: int = 400) -> str:
    line = next((x for x in text.strip().splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def outcome_finding(*, test_id: str, when: str, outcome: str, message: str, criterion: Criterion | None,
                    recorded: Sequence[Finding], xfail_reason: str | None = None) -> Finding | None:
    """The finding to add for one phase report of a test (``when``: setup, call, teardown; ``outcome``: passed,
    failed, skipped), given what the test recorded so far; None when its findings already say it all."""
    subject = subject_of_test(test_id)
    text = _first_line(message) or f"{test_id} {outcome}"
    if outcome == "failed":
        if when == "call" and any(f.status is Status.FAIL for f in recorded):
            return None
        # A failed call is charged to the criterion the test was checking; a broken set-up or teardown to the
        # marker's criterion, else to "every test ran to its verdict".
        target = criterion or (recorded[0].criterion if recorded and when == "call" else Criterion.TEST_ERRORS)
        where = {"setup": "could not be set up", "teardown": "failed in teardown"}.get(when, "failed")
        return fd.failed(target, subject, f"{test_id} {where}: {text}")
    if recorded or criterion is None:
        return None
    if outcome == "skipped" and when in ("setup", "call"):
        if xfail_reason is not None:
            return fd.known_limitation(criterion, subject, f"{test_id}: expected failure", xfail_reason or "xfail")
        return fd.not_tested(criterion, subject, text)
    if outcome == "passed" and when == "call":
        return fd.passed(criterion, subject, f"{test_id} passed")
    return None
