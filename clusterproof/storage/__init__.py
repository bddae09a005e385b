"""Prefix-scoped temporary S3 credentials on Ceph RGW (R2-style), three ways, behind one interface.

- ``RgwUserIssuer``: temporary RGW users named ``cptmp_<customer>_<expiry>_<nonce>`` with a per-user policy
  (or bucket-policy statements); a reaper deletes the expired ones, no database needed.
- ``StsIssuer``: RGW STS AssumeRole with an inline session policy; sessions expire on their own.
- ``HttpIssuer``: a provider's R2-shaped credential API (``service`` is the reference implementation).

All three: ``issue(customer, bucket, prefix, ttl_seconds, permission) -> TempCredential``, ``revoke(credential)``,
``reap(customer=None, now=None) -> list[str]``. Bad input raises ValueError and creates nothing; service failures
raise IssuerError; a reap that deletes some and fails on others raises ReapError (with the ids it did delete).
``matrix`` holds the access cases the suites run; ``holes`` finds weakened grants.
"""

from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.client import Answer, answer_of, make_client, s3_client
from clusterproof.storage.http import HttpIssuer
from clusterproof.storage.model import (
    PERMISSIONS,
    CredentialIssuer,
    IssuerError,
    Permission,
    ReapError,
    TempCredential,
    normalise_prefix,
    validate_bucket,
    validate_customer,
    validate_permission,
    validate_ttl,
)
from clusterproof.storage.names import TempName, decode_role_name, decode_uid, new_name
from clusterproof.storage.rgw_user import RgwUserIssuer
from clusterproof.storage.sts import StsIssuer

__all__ = [
    "PERMISSIONS",
    "Answer",
    "CredentialIssuer",
    "HttpIssuer",
    "IssuerError",
    "Permission",
    "ReapError",
    "RgwAdminSession",
    "RgwUserIssuer",
    "StsIssuer",
    "TempCredential",
    "TempName",
    "answer_of",
    "decode_role_name",
    "decode_uid",
    "make_client",
    "new_name",
    "normalise_prefix",
    "s3_client",
    "validate_bucket",
    "validate_customer",
    "validate_permission",
    "validate_ttl",
]
