"""Storage verdicts as findings: each access-matrix case is a finding for :attr:`Criterion.ACCESS_MATRIX` (and, when
it tries a key outside its grant, for :attr:`Criterion.PREFIX_CONFINEMENT`); a deviation listed in
:data:`~clusterproof.storage.matrix.KNOWN_RGW_LIMITATIONS` is a known limitation with its measured reason, never a
silent pass. :func:`row_verdict` gives the storage table's ``verdict`` column the same words.
"""

from __future__ import annotations

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, Subject
from clusterproof.storage.matrix import KNOWN_RGW_LIMITATIONS, CaseResult

PASS = "pass"
FAIL = "fail"
KNOWN = "known-limitation"


def known_limitation_for(issuer: str, permission: str, case_id: str) -> str | None:
    """The documented reason RGW deviates on this case, or None."""
    return KNOWN_RGW_LIMITATIONS.get((issuer, permission, case_id))


def row_verdict(expected: str, observed: str, known_reason: str | None = None) -> str:
    """The storage table's verdict word: ``pass`` when observed as expected, ``known-limitation`` when it deviates
    as a documented RGW limitation says, else ``fail``."""
    if observed == expected:
        return PASS
    return KNOWN if known_reason else FAIL


def case_findings(result: CaseResult, issuer: str) -> list[Finding]:
    """The findings of one matrix case run by ``issuer`` (rgw-user, sts, http).

    A case listed as a known RGW limitation that now behaves as expected fails: the list is out of date and hides
    nothing any more (the same rule as a strict xfail).
    """
    case = result.case
    subject = Subject("issuer", f"{issuer}/{result.permission}")
    known = known_limitation_for(issuer, result.permission, case.id)
    message = f"[{issuer}] {result.message()}"
    values = {"expected": result.expected, "observed": result.observation.observed}
    criteria = [Criterion.ACCESS_MATRIX]
    if result.expected == "deny" and case.where != "inside":
        criteria.append(Criterion.PREFIX_CONFINEMENT)
    out: list[Finding] = []
    for criterion in criteria:
        if result.passed and known:
            out.append(fd.failed(criterion, subject, f"[{issuer}] {case.id} ({result.permission}): listed as a known "
                                 "RGW limitation but behaves as expected now: remove it from KNOWN_RGW_LIMITATIONS",
                                 values=values))
        elif result.passed:
            out.append(fd.passed(criterion, subject, f"[{issuer}] {case.id} ({result.permission}): "
                                 f"{result.expected} as expected", values=values))
        elif known:
            out.append(fd.known_limitation(criterion, subject, message, f"known RGW limitation: {known}"))
        else:
            out.append(fd.failed(criterion, subject, message, values=values))
    return out
