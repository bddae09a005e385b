"""Attacks on the credential scheme, each a check that returns findings.

- ``sts_without_token``: an STS credential used without its session token must be refused.
- ``cross_customer``: customer A's credential on customer B's prefix is refused (PUT, GET, LIST), B's object is
  untouched; A's cleanup never reaches B's credentials; through the provider's API, revoking B's credential under
  A's account path leaves it working.
- ``ttl_above_maximum``: a TTL one second above the maximum is refused and creates nothing.
- ``colliding_customers``: ids that collide with another's user-name fields (``acme`` vs ``acme_corp``, and
  ``.``, ``$``, ``:``, ``/``, ``%5f``, spaces, capitals) are refused and create nothing; ``acme`` and ``acme-corp``
  stay apart in revoke and reap.

``admin_uids()`` lists every user and role name on the RGW (the admin view), so "creates nothing" is checked
against everything, not only against names the scheme can decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, Subject
from clusterproof.redact import redact
from clusterproof.storage.client import answer_of, s3_client
from clusterproof.storage.model import CredentialIssuer, TempCredential

Connect = Callable[[TempCredential], Any]


def _try(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the answer is the observation
        a = answer_of(e)
        return "deny" if a.denied else f"error:{a}"
    return "allow"


def sts_without_token(cred: TempCredential, endpoint: str, region: str, kind: str) -> list[Finding]:
    subject = Subject("issuer", kind)
    if not cred.session_token:
        return [fd.not_tested(Criterion.ACCESS_MATRIX, subject,
                              f"{kind} credentials carry no session token: nothing to leave out")]
    bare = s3_client(endpoint, cred.access_key_id, cred.secret_access_key, None, region=region)
    seen = {what: _try(call) for what, call in (
        ("PUT", lambda: bare.put_object(Bucket=cred.bucket, Key=cred.prefix + "no-token", Body=b"t")),
        ("GET", lambda: bare.list_objects_v2(Bucket=cred.bucket, Prefix=cred.prefix)),
    )}
    bad = {k: v for k, v in seen.items() if v != "deny"}
    if bad:
        return [fd.failed(Criterion.ACCESS_MATRIX, subject,
                          f"{kind}: the credential without its session token was not refused: {bad}")]
    return [fd.passed(Criterion.ACCESS_MATRIX, subject,
                      f"{kind}: access key and secret without the session token are refused (PUT, LIST)")]


def cross_customer(issuer: CredentialIssuer, connect: Connect, bucket: str, a: str, b: str) -> list[Finding]:
    subject = Subject("issuer", issuer.kind)
    ca = issuer.issue(a, bucket, f"{a}/", 600)
    cb = issuer.issue(b, bucket, f"{b}/", 600)
    out: list[Finding] = []
    try:
        client_a, client_b = connect(ca), connect(cb)
        client_b.put_object(Bucket=bucket, Key=f"{b}/secret", Body=b"B's data")
        seen = {
            "PUT": _try(lambda: client_a.put_object(Bucket=bucket, Key=f"{b}/secret", Body=b"A was here")),
            "GET": _try(lambda: client_a.get_object(Bucket=bucket, Key=f"{b}/secret")["Body"].read()),
            "LIST": _try(lambda: client_a.list_objects_v2(Bucket=bucket, Prefix=f"{b}/")),
            "DELETE": _try(lambda: client_a.delete_object(Bucket=bucket, Key=f"{b}/secret")),
        }
        body = client_b.get_object(Bucket=bucket, Key=f"{b}/secret")["Body"].read()
        bad = {k: v for k, v in seen.items() if v != "deny"}
        intact = body == b"B's data"
        if bad or not intact:
            out.append(fd.failed(Criterion.PREFIX_CONFINEMENT, subject,
                                 f"{issuer.kind}: customer {a}'s credential on customer {b}'s prefix: {bad or seen}; "
                                 f"B's object {'intact' if intact else 'changed'}"))
        else:
            out.append(fd.passed(Criterion.PREFIX_CONFINEMENT, subject,
                                 f"{issuer.kind}: customer {a}'s credential is refused on {b}'s prefix (PUT, GET, "
                                 "LIST, DELETE); B's object intact"))
        deleted = issuer.reap(a, cb.expires_at + timedelta(hours=1))
        if cb.id in deleted or _try(lambda: client_b.put_object(Bucket=bucket, Key=f"{b}/after", Body=b"x")) != "allow":
            out.append(fd.failed(Criterion.ACCESS_MATRIX, subject,
                                 f"{issuer.kind}: cleanup of customer {a} deleted customer {b}'s credential {cb.id}"))
        else:
            out.append(fd.passed(Criterion.ACCESS_MATRIX, subject,
                                 f"{issuer.kind}: cleanup of customer {a} left customer {b}'s credential alone"))
        if issuer.kind == "http":
            try:
                issuer.revoke(replace(cb, customer=a))  # B's id under A's account path: the service must say 404
            except Exception as e:  # noqa: BLE001 - a refusal is fine; what matters is B's credential below
                out.append(fd.passed(Criterion.ACCESS_MATRIX, subject, f"revoke of {b}'s id under {a}'s path "
                                                                       f"refused: {redact(str(e))[:120]}"))
            works = _try(lambda: client_b.put_object(Bucket=bucket, Key=f"{b}/after-revoke", Body=b"x"))
            if works != "allow":
                out.append(fd.failed(Criterion.ACCESS_MATRIX, subject,
                                     f"http: customer {a} revoked customer {b}'s credential {cb.id} through its own "
                                     f"account path (B's PUT now: {works})"))
            else:
                out.append(fd.passed(Criterion.ACCESS_MATRIX, subject,
                                     f"http: revoking {b}'s credential under {a}'s account path left it working"))
    finally:
        for c in (ca, cb):
            issuer.revoke(c)
    return out


def ttl_above_maximum(issuer: CredentialIssuer, bucket: str, customer: str,
                      admin_uids: Callable[[], set[str]]) -> list[Finding]:
    subject = Subject("issuer", issuer.kind)
    out: list[Finding] = []
    before = admin_uids()
    for ttl in sorted({issuer.max_ttl_seconds + 1, 604801}):
        try:
            cred = issuer.issue(customer, bucket, "ttl/", ttl)
        except ValueError as e:
            out.append(fd.passed(Criterion.EXPIRY, subject, f"{issuer.kind}: TTL {ttl} s refused: {redact(str(e))[:160]}"))
            continue
        except Exception as e:  # noqa: BLE001 - refused, but not as bad input
            out.append(fd.failed(Criterion.EXPIRY, subject, f"{issuer.kind}: TTL {ttl} s answered with an error, not a "
                                                            f"refusal of bad input: {type(e).__name__}: {redact(str(e))[:200]}"))
            continue
        issuer.revoke(cred)
        out.append(fd.failed(Criterion.EXPIRY, subject, f"{issuer.kind}: TTL {ttl} s, above the maximum "
                                                        f"{issuer.max_ttl_seconds} s, was accepted (expires {cred.expires_at})"))
    extra = sorted(n for n in admin_uids() - before if customer in n)
    if extra:
        out.append(fd.failed(Criterion.EXPIRY, subject, f"{issuer.kind}: a refused TTL left {extra}"))
    return out


#: How a customer id can be made to collide with another's user-name fields.
COLLIDING_SUFFIXES = ("_corp", ".corp", "$corp", ":corp", "/corp", "%5fcorp", " corp", "-Corp", "_")


def colliding_customers(issuer: CredentialIssuer, connect: Connect, bucket: str, base: str,
                        admin_uids: Callable[[], set[str]]) -> list[Finding]:
    """``base`` plays ``acme``; ``base-corp`` is a legitimate neighbour; the suffixes above must all be refused."""
    subject = Subject("issuer", issuer.kind)
    out: list[Finding] = []
    before = admin_uids()
    # The provider's API must refuse these itself: send them past the client's own check of the customer id.
    issue = getattr(issuer, "issue_unchecked", issuer.issue)
    for suffix in COLLIDING_SUFFIXES:
        bad = base + suffix
        try:
            cred = issue(bad, bucket, "c/", 600)
        except ValueError:
            continue
        except Exception as e:  # noqa: BLE001
            out.append(fd.failed(Criterion.ACCESS_MATRIX, subject, f"{issuer.kind}: customer id {bad!r} answered with "
                                                                   f"an error, not a refusal: {redact(str(e))[:160]}"))
            continue
        issuer.revoke(cred)
        out.append(fd.failed(Criterion.ACCESS_MATRIX, subject,
                             f"{issuer.kind}: customer id {bad!r} was accepted: it collides with {base!r}'s names"))
    extra = sorted(n for n in admin_uids() - before if base in n)
    if extra:
        out.append(fd.failed(Criterion.ACCESS_MATRIX, subject, f"{issuer.kind}: refused customer ids left {extra}"))
    elif not out:
        out.append(fd.passed(Criterion.ACCESS_MATRIX, subject,
                             f"{issuer.kind}: {len(COLLIDING_SUFFIXES)} colliding customer ids ({base!r} + "
                             f"{', '.join(repr(s) for s in COLLIDING_SUFFIXES)}) refused, nothing created"))
    neighbour = base + "-corp"
    acme, corp = issuer.issue(base, bucket, "n/", 600), issuer.issue(neighbour, bucket, "n/", 600)
    try:
        deleted = issuer.reap(base, corp.expires_at + timedelta(hours=1))
        works = _try(lambda: connect(corp).put_object(Bucket=bucket, Key="n/corp", Body=b"x"))
        if corp.id in deleted or works != "allow" or acme.id not in deleted:
            out.append(fd.failed(Criterion.ACCESS_MATRIX, subject,
                                 f"{issuer.kind}: reap of {base!r} deleted {deleted}; {neighbour!r}'s credential "
                                 f"now answers {works} (it must reach {base!r} only)"))
        else:
            out.append(fd.passed(Criterion.ACCESS_MATRIX, subject,
                                 f"{issuer.kind}: reap of {base!r} took its own credential and left {neighbour!r}'s"))
    finally:
        for c in (acme, corp):
            issuer.revoke(c)
    return out
