"""Races on purpose, each one round of a bounded loop that must end in the state the API promised.

- ``two_reapers``: two cleanups of one customer at the same moment (the cron overlapping itself). Promise: every
  expired credential is gone, every live one is still there and works, neither call failed, and together they
  reported exactly the expired ones (an id reported by both is noted: RGW confirms concurrent deletes to both).
- ``reap_while_issuing``: a cleanup loops while credentials of the same customer are issued, some of them
  already expired by the reaper's clock. Promise: the live ones all exist and work; an expired one is either
  refused at issue, gone, or complete (never a user or role without its policy); the reaper really ran during
  the issuing.
- ``revoke_while_in_use``: many clients use one credential while it is revoked. Promise: every request sent after
  revoke returned is refused; before it, every request succeeded.
- ``same_prefix_many_clients``: one customer and prefix issued from many clients at once. Promise: every call
  succeeds with a distinct credential, exactly those exist, each works, revoking one leaves the others working.

``list_ids(customer)`` and ``orphan(id)`` are the admin's view (``cleanup.temp_ids`` / ``cleanup.grant_state``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, Subject
from clusterproof.redact import redact
from clusterproof.storage.client import answer_of
from clusterproof.storage.model import CredentialIssuer, IssuerError, ReapError, TempCredential

Connect = Callable[[TempCredential], Any]
ListIds = Callable[[str], list[str]]


@dataclass
class RaceResult:
    race: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _put(client: Any, bucket: str, key: str) -> str:
    """``allow``, ``deny`` or ``error:<answer>`` for one PUT."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"r")
    except Exception as e:  # noqa: BLE001 - the answer is the observation
        a = answer_of(e)
        return "deny" if a.denied else f"error:{a}"
    return "allow"


def _at_once(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """``fn(0..n-1)`` on n threads released together; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return fn(i)
        except Exception as e:  # noqa: BLE001 - a race's failures are its results
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def two_reapers(issuer: CredentialIssuer, connect: Connect, bucket: str, customer: str, list_ids: ListIds,
                expired: int = 4, live: int = 2) -> RaceResult:
    r = RaceResult("two reapers at once")
    short = [issuer.issue(customer, bucket, f"x{i}/", 600) for i in range(expired)]
    long = [issuer.issue(customer, bucket, f"l{i}/", 7200) for i in range(live)]
    now = max(c.expires_at for c in short) + timedelta(seconds=10)
    answers = _at_once(2, lambda _: issuer.reap(customer, now))
    reported: list[str] = []
    for a in answers:
        if isinstance(a, ReapError):
            r.problems.append(f"a reaper failed: {redact(str(a))}")
            reported += a.deleted
        elif isinstance(a, Exception):
            r.problems.append(f"a reaper failed: {type(a).__name__}: {redact(str(a))}")
        else:
            reported += a
    want = {c.id for c in short}
    left = set(list_ids(customer))
    if want & left:
        r.problems.append(f"expired credentials still there after both reapers: {sorted(want & left)}")
    if {c.id for c in long} - left:
        r.problems.append(f"live credentials deleted by the reapers: {sorted({c.id for c in long} - left)}")
    if set(reported) - want:
        r.problems.append(f"the reapers reported ids that were not expired: {sorted(set(reported) - want)}")
    if not r.problems and set(reported) != want:
        r.problems.append(f"the reapers together reported {len(set(reported))} of {len(want)} expired ids")
    dup = len(reported) - len(set(reported))
    if dup:
        r.notes.append(f"{dup} id(s) reported by both reapers")
    for c in long:
        if _put(connect(c), bucket, c.prefix + "still") != "allow":
            r.problems.append(f"live credential {c.id} no longer works after the reapers ran")
        issuer.revoke(c)
    return r


def reap_while_issuing(issuer: CredentialIssuer, connect: Connect, bucket: str, customer: str, list_ids: ListIds,
                       orphan: Callable[[str], bool], issuers: int = 6) -> RaceResult:
    r = RaceResult("reap while issuing")
    # The reaper's clock is 20 minutes ahead: "expired" ones (ttl 600) are fair game mid-creation, live ones
    # (ttl 7200) never are.
    ahead = timedelta(minutes=20)
    stop = threading.Event()
    rounds: list[tuple[float, float]] = []
    reaper_errors: list[str] = []

    def reap_loop() -> None:
        while not stop.is_set():
            t0 = time.time()
            try:
                issuer.reap(customer, datetime.now(UTC) + ahead)
            except IssuerError as e:
                reaper_errors.append(redact(str(e)))
            rounds.append((t0, time.time()))

    reaper = threading.Thread(target=reap_loop, daemon=True)
    reaper.start()
    t_start = time.time()
    try:
        results = _at_once(issuers, lambda i: issuer.issue(customer, bucket, f"w{i}/", 7200 if i % 2 else 600))
    finally:
        t_end = time.time()
        stop.set()
        reaper.join(timeout=60)
    if not any(a < t_end and b > t_start for a, b in rounds):
        r.problems.append("the reaper never ran while credentials were being issued: the race did not happen")
    r.problems += [f"the reaper failed: {e}" for e in reaper_errors[:3]]
    present = set(list_ids(customer))
    for i, res in enumerate(results):
        if i % 2:  # live
            if isinstance(res, Exception):
                r.problems.append(f"issue of a live credential failed while a reaper ran: {redact(str(res))}")
            elif res.id not in present:
                r.problems.append(f"live credential {res.id} was deleted by a reaper that ran {ahead} ahead")
            elif _put(connect(res), bucket, res.prefix + "ok") != "allow":
                r.problems.append(f"live credential {res.id} does not work")
        elif isinstance(res, TempCredential) and res.id in present and orphan(res.id):
            r.problems.append(f"{res.id} was left without its policy (reaped mid-creation, half made)")
        elif isinstance(res, Exception) and not isinstance(res, IssuerError):
            r.problems.append(f"issue failed with {type(res).__name__}: {redact(str(res))}")
    r.notes.append(f"{len(rounds)} reaper rounds; {sum(isinstance(x, Exception) for x in results)} issue(s) refused")
    try:
        issuer.reap(customer, datetime.now(UTC) + timedelta(days=1))
    except IssuerError as e:
        r.problems.append(f"the final reap failed: {redact(str(e))}")
    left = list_ids(customer)
    if left:
        r.problems.append(f"left after a full reap: {left}")
    return r


def revoke_while_in_use(issuer: CredentialIssuer, connect: Connect, bucket: str, customer: str,
                        clients: int = 6, before_s: float = 0.3, after_s: float = 0.6) -> RaceResult:
    r = RaceResult("revoke while in use")
    cred = issuer.issue(customer, bucket, "busy/", 3600)
    revoked_at: list[float] = []
    stop = threading.Event()

    def hammer(i: int) -> list[tuple[float, float, str]]:
        c = connect(cred)
        seen = []
        n = 0
        while not stop.is_set():
            sent = time.time()
            result = _put(c, bucket, f"busy/c{i}-{n}")
            seen.append((sent, time.time(), result))
            n += 1
        return seen

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(hammer, i) for i in range(clients)]
        time.sleep(before_s)
        issuer.revoke(cred)
        revoked_at.append(time.time())
        time.sleep(after_s)
        stop.set()
        seen = [x for f in futures for x in f.result()]
    t = revoked_at[0]
    after = [s for s in seen if s[0] > t]
    before = [s for s in seen if s[1] < t - 0.05]  # answered well before the revoke began to matter
    allowed_after = [s for s in after if s[2] == "allow"]
    if allowed_after:
        late = max(s[0] - t for s in allowed_after)
        r.problems.append(f"{len(allowed_after)} of {len(after)} requests sent after revoke returned were allowed "
                          f"(the last {late:.3f} s after)")
    if not after:
        r.problems.append("no request was sent after the revoke: the race did not happen")
    odd_before = [s for s in before if s[2] != "allow" and s[1] < t - 1.0]
    if odd_before:
        r.problems.append(f"{len(odd_before)} requests failed before the revoke: {odd_before[0][2]}")
    errors = [s for s in after if s[2].startswith("error")]
    if errors:
        r.notes.append(f"{len(errors)} request(s) after revoke errored instead of a refusal: {errors[0][2]}")
    r.notes.append(f"{len(seen)} requests by {clients} clients; {len(after)} after revoke, all refused"
                   if not allowed_after else f"{len(seen)} requests")
    return r


def same_prefix_many_clients(issuer: CredentialIssuer, connect: Connect, bucket: str, customer: str,
                             list_ids: ListIds, clients: int = 6) -> RaceResult:
    r = RaceResult("same customer and prefix from many clients")
    results = _at_once(clients, lambda _: issuer.issue(customer, bucket, "shared/", 3600))
    creds = [x for x in results if isinstance(x, TempCredential)]
    for x in results:
        if isinstance(x, Exception):
            r.problems.append(f"issue failed: {type(x).__name__}: {redact(str(x))}")
    if len({c.id for c in creds}) != len(creds) or len({c.access_key_id for c in creds}) != len(creds):
        r.problems.append(f"{len(creds)} calls returned {len({c.id for c in creds})} distinct ids and "
                          f"{len({c.access_key_id for c in creds})} distinct access keys")
    present = set(list_ids(customer))
    if present != {c.id for c in creds}:
        r.problems.append(f"{len(creds)} credentials issued, {len(present)} exist: missing "
                          f"{sorted({c.id for c in creds} - present)}, extra {sorted(present - {c.id for c in creds})}")
    clients_of = {c.id: connect(c) for c in creds}
    for i, c in enumerate(creds):
        if _put(clients_of[c.id], bucket, f"shared/k{i}") != "allow":
            r.problems.append(f"{c.id} does not work inside shared/")
        if _put(clients_of[c.id], bucket, f"shared-not/k{i}") != "deny":
            r.problems.append(f"{c.id} works outside shared/")
    if creds:
        issuer.revoke(creds[0])
        for c in creds[1:]:
            if _put(clients_of[c.id], bucket, "shared/after-one-revoke") != "allow":
                r.problems.append(f"revoking {creds[0].id} also broke {c.id}")
        if len(creds) > 1:  # the rest revoked at once, too
            failed = [x for x in _at_once(len(creds) - 1, lambda i: issuer.revoke(creds[i + 1])) if x is not None]
            r.problems += [f"revoke failed: {type(x).__name__}: {redact(str(x))}" for x in failed]
        still = [c.id for c in creds if _put(clients_of[c.id], bucket, "shared/after-all") == "allow"]
        if still:
            r.problems.append(f"still working after revoke: {still}")
    return r


def check_race(results: list[RaceResult], issuer: str) -> list[Finding]:
    """FAIL per problem (naming the round), else one PASS for the race with its notes."""
    subject = Subject("issuer", issuer)
    out = [fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject, f"{res.race}, round {n}: {p}")
           for n, res in enumerate(results, 1) for p in res.problems]
    if not out and results:
        notes = sorted({note for res in results for note in res.notes})[:4]
        out.append(fd.passed(Criterion.CREDENTIAL_RESILIENCE, subject,
                             f"{results[0].race}: {len(results)} round(s) ended as the API promised"
                             + (f" ({'; '.join(notes)})" if notes else ""), values={"rounds": len(results)}))
    return out
