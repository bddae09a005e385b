"""Races on purpose (``clusterproof.storage.races``): two reapers at once for one customer, reap while issuing,
revoke while many clients use the credential, one customer and prefix issued from many clients at once. Each race
runs ``storage.race_rounds`` rounds and every round must end in the state the API promised.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clusterproof.inventory import StorageSettings
from clusterproof.storage import CredentialIssuer, RgwAdminSession
from clusterproof.storage import races as rc
from clusterproof.storage.cleanup import grant_state, temp_ids
from fixtures.findings import FindingRecorder
from fixtures.s3 import Connect

RACES: dict[str, Callable[..., rc.RaceResult]] = {
    "two-reapers": lambda i, con, b, cu, ls, orphan: rc.two_reapers(i, con, b, cu, ls),
    "reap-while-issuing": lambda i, con, b, cu, ls, orphan: rc.reap_while_issuing(i, con, b, cu, ls, orphan),
    "revoke-while-in-use": lambda i, con, b, cu, ls, orphan: rc.revoke_while_in_use(i, con, b, cu),
    "same-prefix-many-clients": lambda i, con, b, cu, ls, orphan: rc.same_prefix_many_clients(i, con, b, cu, ls),
}


@pytest.mark.parametrize("race", list(RACES))
def test_s3_race(race: str, s3_issuer: CredentialIssuer, s3_admin: RgwAdminSession, s3_bucket: str,
                 s3_customer: str, s3_connect: Connect, storage: StorageSettings, findings: FindingRecorder) -> None:
    results = []
    for n in range(storage.race_rounds):
        customer = f"{s3_customer}-r{n}"
        results.append(RACES[race](s3_issuer, s3_connect, s3_bucket, customer, lambda c: temp_ids(s3_admin, c),
                                   lambda ident: grant_state(s3_admin, ident) == "no-grant"))
    findings.check(rc.check_race(results, s3_issuer.kind))
