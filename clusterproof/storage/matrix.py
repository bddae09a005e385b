"""The access matrix of a prefix-scoped credential: cases as data, and a runner that executes one case with real
S3 clients and reports what RGW answered.

A case is an operation at a place (``where``) relative to the grant ``bucket/prefix``: ``inside`` the prefix,
``inside-sub`` (a deeper prefix), the ``sibling`` prefix (``data2/`` next to ``data/``), the bucket ``root``,
``no-prefix`` (a listing without one), ``prefix-noslash`` (``data``), ``other-bucket``, ``mixed`` (inside and
sibling keys in one DeleteObjects), the ``bucket`` itself (policy, ACL), a ``new-bucket``. The expected result per
permission is in ``CASES``; ``run_case`` returns ``allow``, ``deny`` (HTTP 403, a refusal code such as
ExpiredToken, or a per-key AccessDenied) or ``error:<code>`` with RGW's answer, and ``CaseResult.message`` names the hole when a deny was expected.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clusterproof.storage.client import answer_of

ALLOW, DENY = "allow", "deny"
ANONYMOUS_READ_GRANT = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'


@dataclass(frozen=True)
class Case:
    """One operation at one place, with the expected result for each permission."""

    op: str
    where: str
    read_write: str
    read_only: str

    @property
    def id(self) -> str:
        """``op-where``: grep-able, no ``/``, spaces or ``|``."""
        return f"{self.op}-{self.where}"

    def expected(self, permission: str) -> str:
        return self.read_write if permission == "object-read-write" else self.read_only


def _cases() -> tuple[Case, ...]:
    out: list[Case] = []
    outside = ("sibling", "root", "other-bucket")
    for op, rw, ro in (("put", ALLOW, DENY), ("get", ALLOW, ALLOW), ("head", ALLOW, ALLOW), ("delete", ALLOW, DENY),
                       ("copy_in", ALLOW, DENY), ("mp_create", ALLOW, DENY), ("mp_upload_part", ALLOW, DENY),
                       ("mp_list_parts", ALLOW, DENY), ("mp_complete", ALLOW, DENY), ("mp_abort", ALLOW, DENY)):
        out.append(Case(op, "inside", rw, ro))
        out.extend(Case(op, w, DENY, DENY) for w in outside)
    out.extend(Case("copy_out", w, DENY, DENY) for w in outside)
    for op in ("list_v1", "list_v2"):
        out += [Case(op, "inside", ALLOW, ALLOW), Case(op, "inside-sub", ALLOW, ALLOW)]
        out.extend(Case(op, w, DENY, DENY) for w in ("sibling", "prefix-noslash", "root", "no-prefix", "other-bucket"))
    for op in ("list_v1_delim", "list_v2_delim"):
        out += [Case(op, "inside", ALLOW, ALLOW), Case(op, "inside-sub", ALLOW, ALLOW)]
        out.extend(Case(op, w, DENY, DENY) for w in ("sibling", "no-prefix"))
    out.append(Case("delete_objects", "inside", ALLOW, DENY))
    out.extend(Case("delete_objects", w, DENY, DENY) for w in ("sibling", "root", "mixed"))
    for op in ("get_bucket_policy", "put_bucket_policy", "delete_bucket_policy", "get_bucket_acl", "put_bucket_acl"):
        out.append(Case(op, "bucket", DENY, DENY))
    out += [Case("get_object_acl", "inside", DENY, DENY), Case("put_object_acl", "inside", DENY, DENY),
            Case("create_bucket", "new-bucket", DENY, DENY)]
    # "allow" here would mean: an anonymous GET of the object succeeds afterwards (it was published).
    out.extend(Case(op, "inside", DENY, DENY) for op in (
        "publish_put_acl", "publish_grant_header", "publish_object_acl", "publish_copy_acl", "publish_multipart_acl"))
    return tuple(out)


CASES: tuple[Case, ...] = _cases()

#: Deviations of RGW 16.2 from the expected table, measured, by (issuer kind, permission, case id). Suites mark
#: them xfail(strict=True): a fixed RGW turns them into failures that ask for this entry to go.
KNOWN_RGW_LIMITATIONS: dict[tuple[str, str, str], str] = {
    ("sts", "object-read-write", "delete_objects-inside"):
        "RGW 16.2 answers AccessDenied for every key of DeleteObjects when the STS session carries a session "
        "policy, even inside the grant (single DeleteObject works; StsIssuer(session_policy=False) avoids it)",
}


@dataclass(frozen=True)
class Layout:
    """Where a matrix runs: the granted bucket and prefix, and another bucket the credential must not reach."""

    bucket: str
    other_bucket: str
    prefix: str = "data/"

    @property
    def sibling(self) -> str:
        return self.prefix[:-1] + "2/"

    def place(self, where: str) -> tuple[str, str]:
        """(bucket, key prefix) of an object place."""
        return {
            "inside": (self.bucket, self.prefix),
            "inside-sub": (self.bucket, self.prefix + "sub/"),
            "sibling": (self.bucket, self.sibling),
            "root": (self.bucket, ""),
            "other-bucket": (self.other_bucket, self.prefix),
        }[where]

    def list_args(self, where: str) -> dict[str, Any]:
        """Bucket and Prefix of a listing at ``where`` (no Prefix at all for ``no-prefix``)."""
        if where == "no-prefix":
            return {"Bucket": self.bucket}
        if where == "prefix-noslash":
            return {"Bucket": self.bucket, "Prefix": self.prefix[:-1]}
        bucket, prefix = self.place(where)
        return {"Bucket": bucket, "Prefix": prefix}


@dataclass(frozen=True)
class Actors:
    """The S3 clients a case needs: the credential under test, the bucket owner (setup), an anonymous client."""

    credential: Any
    owner: Any
    anonymous: Any


@dataclass(frozen=True)
class Observation:
    observed: str  # allow | deny | error:<code>
    detail: str  # RGW's answer, e.g. "200", "403 AccessDenied", per-key errors


@dataclass(frozen=True)
class CaseResult:
    """A case run with one permission: expectation, observation, and a message naming the hole on failure."""

    case: Case
    permission: str
    observation: Observation
    layout: Layout

    @property
    def expected(self) -> str:
        return self.case.expected(self.permission)

    @property
    def passed(self) -> bool:
        return self.observation.observed == self.expected

    def message(self) -> str:
        head = (f"{self.case.id} ({self.permission}): expected {self.expected}, observed {self.observation.observed}"
                f" (RGW answered: {self.observation.detail})")
        hole = self.hole()
        return f"{hole} -- {head}" if hole else head

    def hole(self) -> str | None:
        """What the failure means for the grant, e.g. ``sibling prefix data2/ readable: grant leaks beyond data/``."""
        if self.passed:
            return None
        op, where, lay = self.case.op, self.case.where, self.layout
        if self.expected == ALLOW:
            return f"{op} {where} denied: the grant on {lay.bucket}/{lay.prefix} is too narrow"
        if self.observation.observed != ALLOW:
            return None
        verb = _VERBS.get(op.split("_")[0], op.replace("_", " ") + " allowed")
        return {
            "sibling": f"sibling prefix {lay.sibling} {verb}: grant leaks beyond {lay.prefix}",
            "root": f"bucket root {verb}: grant leaks beyond {lay.prefix}",
            "no-prefix": f"whole bucket {verb} without a prefix: ListBucket lacks the s3:prefix condition",
            "prefix-noslash": f"prefix {lay.prefix[:-1]!r} without slash {verb}: reveals {lay.sibling}, "
                              f"grant leaks beyond {lay.prefix}",
            "other-bucket": f"other bucket {lay.other_bucket} {verb}: grant leaks beyond bucket {lay.bucket}",
            "mixed": f"DeleteObjects deleted a key outside {lay.prefix}: grant leaks beyond {lay.prefix}",
            "bucket": f"{op} allowed: the credential reaches the bucket's configuration",
            "new-bucket": "the credential can create buckets",
        }.get(where, f"{op} {where} allowed for a {self.permission} credential"
                     + (": object published to anonymous readers" if op.startswith("publish") else ""))


_VERBS = {"put": "writable", "get": "readable", "head": "readable", "delete": "deletable", "copy": "copyable",
          "list": "listable", "mp": "open to multipart uploads"}


def seed(owner: Any, layout: Layout) -> None:
    """Write, as the bucket owner, the objects the read, copy and ACL cases use."""
    for where in ("inside", "inside-sub", "sibling", "root", "other-bucket"):
        bucket, prefix = layout.place(where)
        owner.put_object(Bucket=bucket, Key=prefix + "seed", Body=b"seed")


def run_case(case: Case, actors: Actors, layout: Layout) -> Observation:
    """Execute ``case`` and report RGW's answer. Setup steps (seeding, uploads to act on) run as the owner."""
    return _OPS[case.op](actors, layout, case.where)


def run_matrix(actors: Actors, layout: Layout, permission: str, cases: Iterable[Case] = CASES) -> list[CaseResult]:
    """Run every case (the layout must be seeded) and return the results in order."""
    return [CaseResult(c, permission, run_case(c, actors, layout), layout) for c in cases]


def violations(results: Iterable[CaseResult]) -> list[str]:
    """One message per failed case, naming the hole."""
    return [r.message() for r in results if not r.passed]


# --- operations ----------------------------------------------------------------------------------------------


def _failure(exc: BaseException) -> Observation:
    answer = answer_of(exc)
    return Observation(DENY if answer.denied else f"error:{answer.code or answer.status}", str(answer))


def attempt(fn: Callable[[], Any]) -> Observation:
    """Run one S3 call: ``allow`` when it succeeds, ``deny`` when refused (HTTP 403, or AccessDenied,
    InvalidAccessKeyId or ExpiredToken whatever the status), ``error:<code>`` otherwise."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is an observation; answer_of classifies it
        return _failure(e)
    return Observation(ALLOW, "200")


def wait_until_denied(
    fn: Callable[[], Any], deadline: datetime, interval_s: float = 0.2, remember: int = 5,
) -> tuple[Observation, datetime]:
    """Repeat an S3 call until RGW refuses it (a ``deny``: 403, AccessDenied, InvalidAccessKeyId, ExpiredToken) or
    ``deadline`` (UTC) passes.

    Anything else -- allowed, or an error such as a 500, a timeout or a reset connection -- keeps the poll going:
    a transient error before the expiry is not the expiry.

    Returns:
        The denial and when it was observed (UTC); on timeout the last observation, whose detail lists the last
        ``remember`` answers with their times, and when it was made.
    """
    recent: deque[str] = deque(maxlen=remember)
    while True:
        obs, at = attempt(fn), datetime.now(UTC)
        if obs.observed == DENY:
            return obs, at
        recent.append(f"{at.strftime('%H:%M:%S.%f')[:-3]} {obs.observed} ({obs.detail})")
        if at >= deadline:
            return Observation(obs.observed, f"{obs.detail}; not denied by {deadline.isoformat()}, last answers: "
                                             + "; ".join(recent)), at
        time.sleep(interval_s)


def _name(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}"


def _put(a: Actors, lay: Layout, where: str) -> Observation:
    bucket, prefix = lay.place(where)
    return attempt(lambda: a.credential.put_object(Bucket=bucket, Key=prefix + _name("put"), Body=b"x"))


def _get(a: Actors, lay: Layout, where: str) -> Observation:
    bucket, prefix = lay.place(where)
    return attempt(lambda: a.credential.get_object(Bucket=bucket, Key=prefix + "seed")["Body"].read())


def _head(a: Actors, lay: Layout, where: str) -> Observation:
    bucket, prefix = lay.place(where)
    return attempt(lambda: a.credential.head_object(Bucket=bucket, Key=prefix + "seed"))


def _delete(a: Actors, lay: Layout, where: str) -> Observation:
    bucket, prefix = lay.place(where)
    key = prefix + _name("victim")
    a.owner.put_object(Bucket=bucket, Key=key, Body=b"x")
    return attempt(lambda: a.credential.delete_object(Bucket=bucket, Key=key))


def _copy_in(a: Actors, lay: Layout, where: str) -> Observation:
    src_bucket, src_prefix = lay.place(where)
    return attempt(lambda: a.credential.copy_object(
        Bucket=lay.bucket, Key=lay.prefix + _name("copy"), CopySource={"Bucket": src_bucket, "Key": src_prefix + "seed"}))


def _copy_out(a: Actors, lay: Layout, where: str) -> Observation:
    bucket, prefix = lay.place(where)
    return attempt(lambda: a.credential.copy_object(
        Bucket=bucket, Key=prefix + _name("copy"), CopySource={"Bucket": lay.bucket, "Key": lay.prefix + "seed"}))


def _lister(version: int, delimiter: bool) -> Callable[[Actors, Layout, str], Observation]:
    def run(a: Actors, lay: Layout, where: str) -> Observation:
        args = lay.list_args(where) | ({"Delimiter": "/"} if delimiter else {})
        call = a.credential.list_objects_v2 if version == 2 else a.credential.list_objects
        return attempt(lambda: call(**args))
    return run


def _owner_upload(a: Actors, bucket: str, key: str, with_part: bool) -> tuple[str, list[dict[str, Any]]]:
    upload = a.owner.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    if with_part:
        etag = a.owner.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p")["ETag"]
        parts.append({"PartNumber": 1, "ETag": etag})
    return upload, parts


def _mp_create(a: Actors, lay: Layout, where: str) -> Observation:
    bucket, prefix = lay.place(where)
    return attempt(lambda: a.credential.create_multipart_upload(Bucket=bucket, Key=prefix + _name("mp")))


def _mp_step(step: str) -> Callable[[Actors, Layout, str], Observation]:
    def run(a: Actors, lay: Layout, where: str) -> Observation:
        bucket, prefix = lay.place(where)
        key = prefix + _name("mp")
        upload, parts = _owner_upload(a, bucket, key, with_part=step in ("list_parts", "complete"))
        c = a.credential
        call: Callable[[], Any] = {
            "upload_part": lambda: c.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p"),
            "list_parts": lambda: c.list_parts(Bucket=bucket, Key=key, UploadId=upload),
            "complete": lambda: c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                                            MultipartUpload={"Parts": parts}),
            "abort": lambda: c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload),
        }[step]
        return attempt(call)
    return run


def _delete_objects(a: Actors, lay: Layout, where: str) -> Observation:
    places = ["inside", "sibling"] if where == "mixed" else [where, where]
    keys = []
    for place in places:
        bucket, prefix = lay.place(place)
        keys.append(prefix + _name("victim"))
        a.owner.put_object(Bucket=bucket, Key=keys[-1], Body=b"x")
    try:
        resp = a.credential.delete_objects(Bucket=lay.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    except Exception as e:  # noqa: BLE001 - a request-level denial is an observation too
        return _failure(e)
    errors = resp.get("Errors", [])
    deleted = {d["Key"] for d in resp.get("Deleted", [])}
    detail = "; ".join([f"{k}: deleted" for k in keys if k in deleted]
                       + [f"{e.get('Key')}: {e.get('Code')}" for e in errors])
    if not errors and deleted >= set(keys):
        return Observation(ALLOW, f"200 ({detail})")
    if any(e.get("Code") == "AccessDenied" for e in errors):
        return Observation(DENY, f"200 with per-key errors ({detail})")
    return Observation(f"error:{errors[0].get('Code') if errors else 'NotDeleted'}", detail)


def _bucket_op(op: str) -> Callable[[Actors, Layout, str], Observation]:
    def run(a: Actors, lay: Layout, where: str) -> Observation:
        c, b = a.credential, lay.bucket
        if op == "put_bucket_policy":
            current = a.owner.get_bucket_policy(Bucket=b)["Policy"]
            return attempt(lambda: c.put_bucket_policy(Bucket=b, Policy=current))  # same text: harmless if allowed
        if op == "delete_bucket_policy":
            current = a.owner.get_bucket_policy(Bucket=b)["Policy"]
            obs = attempt(lambda: c.delete_bucket_policy(Bucket=b))
            if obs.observed == ALLOW:  # put the owner's guard back: the other cases need it
                a.owner.put_bucket_policy(Bucket=b, Policy=current)
            return obs
        call: Callable[[], Any] = {
            "get_bucket_policy": lambda: c.get_bucket_policy(Bucket=b),
            "get_bucket_acl": lambda: c.get_bucket_acl(Bucket=b),
            "put_bucket_acl": lambda: c.put_bucket_acl(Bucket=b, ACL="private"),
            "get_object_acl": lambda: c.get_object_acl(Bucket=b, Key=lay.prefix + "seed"),
            "put_object_acl": lambda: c.put_object_acl(Bucket=b, Key=_own_object(a, lay), ACL="private"),
        }[op]
        return attempt(call)
    return run


def _create_bucket(a: Actors, lay: Layout, where: str) -> Observation:
    name = f"{lay.bucket[:40]}-{secrets.token_hex(4)}"
    obs = attempt(lambda: a.credential.create_bucket(Bucket=name))
    if obs.observed == ALLOW:
        attempt(lambda: a.credential.delete_bucket(Bucket=name))
    return obs


def _own_object(a: Actors, lay: Layout) -> str:
    """A key inside the prefix owned by the credential when it can write (ACL fallback applies to owners)."""
    key = lay.prefix + _name("own")
    if attempt(lambda: a.credential.put_object(Bucket=lay.bucket, Key=key, Body=b"x")).observed != ALLOW:
        a.owner.put_object(Bucket=lay.bucket, Key=key, Body=b"x")
    return key


def _publish(how: str) -> Callable[[Actors, Layout, str], Observation]:
    """Try to make an object inside the prefix world-readable; ``allow`` means an anonymous GET then works."""

    def run(a: Actors, lay: Layout, where: str) -> Observation:
        c, b = a.credential, lay.bucket
        key = lay.prefix + _name("pub")
        if how == "put_acl":
            step = attempt(lambda: c.put_object(Bucket=b, Key=key, Body=b"x", ACL="public-read"))
        elif how == "grant_header":
            step = attempt(lambda: c.put_object(Bucket=b, Key=key, Body=b"x", GrantRead=ANONYMOUS_READ_GRANT))
        elif how == "object_acl":
            key = _own_object(a, lay)
            step = attempt(lambda: c.put_object_acl(Bucket=b, Key=key, ACL="public-read"))
        elif how == "copy_acl":
            step = attempt(lambda: c.copy_object(Bucket=b, Key=key, ACL="public-read",
                                                  CopySource={"Bucket": b, "Key": lay.prefix + "seed"}))
        else:
            step = attempt(lambda: _multipart_upload(c, b, key, ACL="public-read"))
        if step.observed != ALLOW:
            return step
        read = attempt(lambda: a.anonymous.get_object(Bucket=b, Key=key)["Body"].read())
        if read.observed == ALLOW:
            return Observation(ALLOW, f"{how} accepted and an anonymous GET answered 200")
        return Observation(DENY, f"{how} accepted (200) but an anonymous GET answered {read.detail}")
    return run


def _multipart_upload(c: Any, bucket: str, key: str, **extra: Any) -> None:
    upload = c.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    etag = c.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"p")["ETag"]
    c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})


_OPS: dict[str, Callable[[Actors, Layout, str], Observation]] = {
    "put": _put, "get": _get, "head": _head, "delete": _delete, "copy_in": _copy_in, "copy_out": _copy_out,
    "list_v1": _lister(1, False), "list_v2": _lister(2, False),
    "list_v1_delim": _lister(1, True), "list_v2_delim": _lister(2, True),
    "mp_create": _mp_create, "mp_upload_part": _mp_step("upload_part"), "mp_list_parts": _mp_step("list_parts"),
    "mp_complete": _mp_step("complete"), "mp_abort": _mp_step("abort"),
    "delete_objects": _delete_objects, "create_bucket": _create_bucket,
    **{op: _bucket_op(op) for op in ("get_bucket_policy", "put_bucket_policy", "delete_bucket_policy",
                                      "get_bucket_acl", "put_bucket_acl", "get_object_acl", "put_object_acl")},
    **{f"publish_{how}": _publish(how) for how in ("put_acl", "grant_header", "object_acl", "copy_acl", "multipart_acl")},
}

#: The operation names ``run_case`` knows.
OPERATIONS: frozenset[str] = frozenset(_OPS)
