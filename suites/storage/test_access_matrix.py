"""The access matrix: every operation, inside the prefix and everywhere it must not reach, for each issuer kind
and each permission. Expectations are data (``clusterproof.storage.matrix.CASES``); a failure names the hole and
quotes RGW's answer. Select with ``-k``: ``-k "sts and sibling"``, ``-k "read-only and list"``.

One credential per (issuer, permission) serves the whole module: cases write under unique keys, so they do not
disturb each other, and each xdist worker builds its own credential and buckets.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from clusterproof.findings import Criterion
from clusterproof.inventory import StorageSettings
from clusterproof.storage import (
    PERMISSIONS,
    CredentialIssuer,
    Permission,
    RgwAdminSession,
    TempCredential,
    s3_client,
    validate_permission,
)
from clusterproof.storage.matrix import CASES, Actors, Case, CaseResult, Layout, run_case, seed
from clusterproof.storage.verdicts import case_findings, known_limitation_for
from fixtures.findings import FindingRecorder
from fixtures.s3 import BucketFactory

pytestmark = pytest.mark.criterion(Criterion.ACCESS_MATRIX)


@dataclass(frozen=True)
class Grant:
    kind: str
    permission: str
    credential: TempCredential
    layout: Layout
    actors: Actors


@pytest.fixture(scope="module", params=PERMISSIONS)
def permission(request: pytest.FixtureRequest) -> Permission:
    """Yields: object-read-write, then object-read-only. Scope: module."""
    return validate_permission(request.param)


@pytest.fixture(scope="module")
def grant(s3_issuer: CredentialIssuer, permission: Permission, s3_buckets: BucketFactory,
          s3_admin: RgwAdminSession, s3_tag: str, storage: StorageSettings) -> Iterator[Grant]:
    """Yields: a credential on ``<bucket>/data/`` plus another bucket, both seeded. Scope: module.
    Cleans up: revokes the credential and deletes both buckets."""
    layout = Layout(s3_buckets.create(), s3_buckets.create(), "data/")
    cred = s3_issuer.issue(f"{s3_tag}-{secrets.token_hex(3)}", layout.bucket, "data", 1800, permission)
    try:
        seed(s3_admin.s3, layout)
        actors = Actors(
            credential=s3_client(storage.endpoint, region=storage.region, **cred.client_kwargs()),
            owner=s3_admin.s3,
            anonymous=s3_client(storage.endpoint, region=storage.region, anonymous=True),
        )
        yield Grant(s3_issuer.kind, permission, cred, layout, actors)
    finally:
        s3_issuer.revoke(cred)
        s3_buckets.delete(layout.bucket)
        s3_buckets.delete(layout.other_bucket)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_s3_access_matrix(grant: Grant, case: Case, s3_record: Callable[..., None], findings: FindingRecorder) -> None:
    observation = run_case(case, grant.actors, grant.layout)
    result = CaseResult(case, grant.permission, observation, grant.layout)
    s3_record(issuer=grant.kind, permission=grant.permission, operation=case.op, where=case.where,
              expected=result.expected, observed=observation.observed, detail=observation.detail,
              known_limitation=known_limitation_for(grant.kind, grant.permission, case.id))
    findings.check(case_findings(result, grant.kind))
