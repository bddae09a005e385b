"""uid / role-name encoding: round trip, strict decoding, and collision-freedom by construction."""

from __future__ import annotations

import itertools

import pytest

from clusterproof.storage.names import TempName, decode_role_name, decode_uid, new_name, validate_customer

CUSTOMERS = ["acme", "acme-corp", "a", "a-b-c", "x9", "0", "acme-corp-eu-west-2", "a" * 32]


@pytest.mark.parametrize("customer", CUSTOMERS)
def test_s3_uid_and_role_name_round_trip(customer: str) -> None:
    name = new_name(customer, 1767225600)
    assert decode_uid(name.uid()) == name
    assert decode_role_name(name.role_name()) == name
    assert name.uid() == f"cptmp_{customer}_1767225600_{name.nonce}"
    assert name.role_name() == f"cptmp.{customer}.1767225600.{name.nonce}"


def test_s3_names_never_collide_across_customers_and_expiries() -> None:
    names = [TempName(c, e, n) for c, e, n in itertools.product(CUSTOMERS, [0, 1, 17, 1767225600], ["00000000", "abcdef01"])]
    uids = [n.uid() for n in names]
    roles = [n.role_name() for n in names]
    assert len(set(uids)) == len(names) and len(set(roles)) == len(names)
    assert [decode_uid(u) for u in uids] == names  # injective: decoding gives back exactly the fields


def test_s3_customer_acme_corp_with_underscore_is_impossible() -> None:
    """``acme`` + ``_corp...`` could read as customer ``acme_corp``: the underscore is refused at the door."""
    with pytest.raises(ValueError, match="acme_corp"):
        validate_customer("acme_corp")
    with pytest.raises(ValueError):
        new_name("acme_corp", 1)
    # and a uid that would need it does not decode as anything
    assert decode_uid("cptmp_acme_corp_1767225600_abcdef01") is None


def test_s3_reaper_for_acme_never_matches_acme_corp() -> None:
    other = new_name("acme-corp", 5)
    decoded = decode_uid(other.uid())
    assert decoded is not None and decoded.customer == "acme-corp" and decoded.customer != "acme"


@pytest.mark.parametrize("uid", [
    "admin", "cp-admin", "cptmp_acme_1_abcdef0", "cptmp_acme_1_abcdef012", "cptmp_acme_x_abcdef01",
    "cptmp_Acme_1_abcdef01", "cptmp__1_abcdef01", "cptmp_acme_1_ABCDEF01", "tenant$cptmp_acme_1_abcdef01",
    "cptmp_-acme_1_abcdef01", "xcptmp_acme_1_abcdef01", "cptmp_acme_1_abcdef01_x", "cptmp.acme.1.abcdef01",
])
def test_s3_decode_refuses_anything_not_exactly_ours(uid: str) -> None:
    assert decode_uid(uid) is None


@pytest.mark.parametrize("customer", ["", "Acme", "acme_corp", "acme.corp", "-acme", "acme-", "a" * 33, "ac me",
                                      "acme/x", "acme$x", "acme:x", "ácme", None, 7])
def test_s3_customer_outside_safe_alphabet_refused(customer: object) -> None:
    with pytest.raises(ValueError, match="customer"):
        validate_customer(customer)


def test_s3_nonce_makes_every_name_new() -> None:
    assert len({new_name("acme", 1).uid() for _ in range(200)}) == 200
