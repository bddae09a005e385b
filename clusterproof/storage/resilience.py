"""The credential API under change: issue, use, revoke and reap flows at a steady rate while a disruption command
(a provider's ``kubectl rollout restart ...``, the sandbox's ``rolling-restart credentials``, an RGW restart) runs
once or several times, and a count of what went wrong.

A flow has its own customer id (``<scope>-f<n>``), so what the API did to it can be read back exactly:

- ``revoke`` flow: issue, exactly one credential exists for the customer (none: lost; two: duplicated, e.g. a
  retried create that had been done), PUT and GET inside the prefix, a PUT outside it must be refused, revoke,
  then the credential must be refused on the very next request.
- ``reap`` flow: the same up to the use, then the cron endpoint (``reap(customer, now=after its expiry)``) must
  name it, and it must be refused afterwards.

Counted: flows that failed (a retry on connection refused, a 502/503/504 or a reset is fine; giving up is not),
wrong answers (a revoked or reaped credential that still works after the API said it was gone; a credential
that works outside its prefix), leftovers (temporary users or roles of the scope after every flow ended). A
disruption that no flow overlapped proves nothing and is reported as a failure of the run.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from clusterproof import findings as fd
from clusterproof.findings import Criterion, Finding, Subject
from clusterproof.redact import redact
from clusterproof.storage.client import answer_of, s3_client
from clusterproof.storage.model import CredentialIssuer, IssuerError, TempCredential

T = TypeVar("T")
#: Transient: the request never reached a healthy server, or the answer says "try again".
_RETRYABLE = re.compile(r"HTTP 50[234]|Connection ?(Error|refused|reset|aborted)|RemoteDisconnected|timed out|"
                        r"Timeout|EndpointConnectionError|ConnectionClosedError|BrokenPipe|storage service error",
                        re.IGNORECASE)
RETRY_BUDGET_S = 30.0
REAP_SLACK_S = 10


@dataclass
class Disruption:
    started: float
    ended: float
    rc: int | None
    output: str


@dataclass
class Flow:
    n: int
    kind: str
    customer: str
    started: float = 0.0
    ended: float = 0.0
    retries: int = 0
    failure: str | None = None
    wrong: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ResilienceResult:
    label: str
    flows: list[Flow]
    disruptions: list[Disruption]
    leftovers: list[str]
    removed_afterwards: list[str]
    seconds: float

    @property
    def failed(self) -> list[Flow]:
        return [f for f in self.flows if f.failure]

    @property
    def wrong_answers(self) -> list[str]:
        return [w for f in self.flows for w in f.wrong]

    @property
    def during_disruption(self) -> list[Flow]:
        return [f for f in self.flows if any(f.started <= d.ended and f.ended >= d.started for d in self.disruptions)]

    def counts(self) -> dict[str, int]:
        return {"flows": len(self.flows), "during_disruption": len(self.during_disruption),
                "failed_flows": len(self.failed), "wrong_answers": len(self.wrong_answers),
                "leftovers": len(self.leftovers), "retries": sum(f.retries for f in self.flows),
                "disruptions": len(self.disruptions)}


def retryable(exc: BaseException) -> bool:
    """A failure worth retrying: the service or RGW was briefly away (not a refusal, not bad input)."""
    if isinstance(exc, ValueError):
        return False
    if isinstance(exc, IssuerError):
        return bool(_RETRYABLE.search(str(exc)))
    answer = answer_of(exc)
    return answer.status is None or answer.status in (500, 502, 503, 504)


def with_retries(flow: Flow, what: str, fn: Callable[[], T], budget_s: float = RETRY_BUDGET_S) -> T:
    deadline, pause = time.monotonic() + budget_s, 0.1
    while True:
        try:
            return fn()
        except Exception as e:
            if not retryable(e) or time.monotonic() > deadline:
                raise
            flow.retries += 1
            flow.notes.append(f"{what}: retried after {type(e).__name__}: {redact(str(e))[:160]}")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


class FlowRunner:
    """Runs flows against one issuer. ``list_ids(customer)`` reads what exists (admin view; None when the provider
    gives none: lost/duplicated and leftovers are then not judged); ``purge(scope)`` removes leftovers afterwards."""

    def __init__(self, issuer: CredentialIssuer, endpoint: str, region: str, bucket: str, scope: str,
                 list_ids: Callable[[str], list[str]] | None, purge: Callable[[str], list[str]] | None = None,
                 ttl_s: int = 600) -> None:
        self.issuer, self.endpoint, self.region, self.bucket = issuer, endpoint, region, bucket
        self.scope, self.list_ids, self.purge, self.ttl_s = scope, list_ids, purge, ttl_s

    def _client(self, cred: TempCredential) -> Any:
        return s3_client(self.endpoint, region=self.region, timeout_s=10, **cred.client_kwargs())

    def _works(self, flow: Flow, client: Any, key: str) -> bool:
        """True when a PUT of ``key`` succeeds, False when refused; retries transient errors."""
        try:
            with_retries(flow, f"PUT {key}", lambda: client.put_object(Bucket=self.bucket, Key=key, Body=b"x"))
        except Exception as e:  # noqa: BLE001 - a refusal is the answer; anything else fails the flow
            if answer_of(e).denied:
                return False
            raise
        return True

    def run_flow(self, flow: Flow) -> Flow:
        flow.started = time.time()
        try:
            self._flow(flow)
        except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
            flow.failure = f"{type(e).__name__}: {redact(str(e))[:300]}"
        flow.ended = time.time()
        return flow

    def _flow(self, flow: Flow) -> None:
        prefix = f"f{flow.n}/"
        cred = with_retries(flow, "issue", lambda: self.issuer.issue(flow.customer, self.bucket, prefix, self.ttl_s))
        if self.list_ids is not None:
            found = with_retries(flow, "list", lambda: self.list_ids(flow.customer))  # type: ignore[misc]
            if len(found) != 1:
                flow.failure = (f"issue returned {cred.id} but {len(found)} credential(s) exist for "
                                f"{flow.customer}: {', '.join(found) or 'none'} ({'lost' if not found else 'duplicated'})")
        c = self._client(cred)
        if not self._works(flow, c, prefix + "obj"):
            flow.failure = flow.failure or f"a fresh credential {cred.id} was refused inside its prefix"
        else:
            body = with_retries(flow, "GET", lambda: c.get_object(Bucket=self.bucket, Key=prefix + "obj")["Body"].read())
            if body != b"x":
                flow.failure = f"GET {prefix}obj returned {len(body)} bytes, not what was written"
        if self._works(flow, c, f"f{flow.n}-outside/obj"):
            flow.wrong.append(f"{cred.id}: PUT outside its prefix {prefix} was allowed")
        said_gone = True
        if flow.kind == "reap":
            # The cron runs after the expiry: a little later than the credential's own (an STS role carries its
            # session's expiry rounded up, plus a second).
            after = cred.expires_at + timedelta(seconds=REAP_SLACK_S)
            deleted = with_retries(flow, "reap", lambda: self.issuer.reap(flow.customer, after))
            gone_already = self.list_ids is not None and cred.id not in with_retries(
                flow, "list", lambda: self.list_ids(flow.customer))  # type: ignore[misc]
            said_gone = cred.id in deleted or gone_already
            if not said_gone:
                flow.failure = flow.failure or f"reap of {flow.customer} did not delete {cred.id} (it said {deleted})"
        else:
            with_retries(flow, "revoke", lambda: self.issuer.revoke(cred))
        if said_gone and self._works(flow, c, prefix + "after"):
            flow.wrong.append(f"{cred.id}: still works after the API said it was {'revoked' if flow.kind == 'revoke' else 'reaped'}")
        c.close()

    def run(self, disruption: Sequence[str], runs: int = 1, rate_per_s: float = 4.0, workers: int = 4,
            warmup_s: float = 1.5, gap_s: float = 1.0, tail_s: float = 1.5, label: str = "",
            min_flows: int = 8) -> ResilienceResult:
        """Start flows every ``1/rate_per_s`` s on ``workers`` threads; after ``warmup_s`` run ``disruption``
        ``runs`` times (``gap_s`` apart); keep the flows going ``tail_s`` after the last one; then count."""
        t0 = time.time()
        flows: list[Flow] = []
        disruptions: list[Disruption] = []
        done = threading.Event()

        def disrupt() -> None:
            try:
                time.sleep(warmup_s)
                for i in range(runs):
                    if i:
                        time.sleep(gap_s)
                    started = time.time()
                    try:
                        p = subprocess.run(list(disruption), capture_output=True, text=True, timeout=600,
                                           stdin=subprocess.DEVNULL)
                        rc, out = p.returncode, (p.stdout + p.stderr)
                    except (OSError, subprocess.TimeoutExpired) as e:
                        rc, out = None, f"{type(e).__name__}: {e}"
                    disruptions.append(Disruption(started, time.time(), rc, redact(out.strip())[-1500:]))
                time.sleep(tail_s)
            finally:
                done.set()

        if not disruption:
            done.set()
        else:
            threading.Thread(target=disrupt, name="cp-disruption", daemon=True).start()
        with ThreadPoolExecutor(workers) as pool:
            futures = []
            n = 0
            while not done.is_set() or n < min_flows:
                kind = "reap" if n % 2 else "revoke"
                flow = Flow(n, kind, f"{self.scope}-f{n}")
                flows.append(flow)
                futures.append(pool.submit(self.run_flow, flow))
                n += 1
                done.wait(1.0 / rate_per_s)
            for f in futures:
                f.result()
        leftovers: list[str] = []
        removed: list[str] = []
        if self.list_ids is not None:
            leftovers = self.list_ids(self.scope)
            if leftovers and self.purge is not None:
                try:
                    removed = list(self.purge(self.scope))
                except IssuerError as e:
                    removed = [f"purge failed: {e}"]
        return ResilienceResult(label, flows, disruptions, leftovers, removed, time.time() - t0)


def check_resilience(result: ResilienceResult, issuer: str, *, evidence_path: str | None = None) -> list[Finding]:
    """Findings for one run: each disruption that failed, each failed flow, each wrong answer and the leftovers
    are failures; so is a disruption that no flow overlapped. Otherwise one PASS with the counts."""
    subject = Subject("issuer", issuer)
    ev = tuple(fd.Evidence(evidence_path, tuple(d.output.splitlines()[-4:])) for d in result.disruptions)
    c = result.counts()
    label = result.label or "disruption"
    out: list[Finding] = []
    for d in result.disruptions:
        if d.rc != 0:
            out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject,
                                 f"{label}: the disruption command exited {d.rc}: {d.output[-300:]}", evidence=ev))
    if not result.disruptions:
        out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject, f"{label}: the disruption never ran"))
    elif not result.during_disruption:
        out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject,
                             f"{label}: no flow overlapped the disruption, so the run proves nothing"))
    for f in result.failed[:10]:
        out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject,
                             f"{label}: {f.kind} flow {f.customer} failed after {f.retries} retries: {f.failure}",
                             evidence=ev))
    if len(result.failed) > 10:
        out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject, f"{label}: {len(result.failed) - 10} more failed flows"))
    for w in result.wrong_answers[:10]:
        out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject, f"{label}: wrong answer: {w}", evidence=ev))
    if result.leftovers:
        out.append(fd.failed(Criterion.CREDENTIAL_RESILIENCE, subject,
                             f"{label}: {len(result.leftovers)} temporary credential(s) left after every flow ended: "
                             f"{', '.join(result.leftovers[:5])} (removed afterwards: {len(result.removed_afterwards)})",
                             evidence=ev))
    if not out:
        windows = ", ".join(f"{d.ended - d.started:.1f} s" for d in result.disruptions)
        out.append(fd.passed(Criterion.CREDENTIAL_RESILIENCE, subject,
                             f"{label}: {c['flows']} flows ({c['during_disruption']} during {c['disruptions']} "
                             f"disruption(s) of {windows}): 0 failed, 0 wrong answers, 0 leftovers, "
                             f"{c['retries']} retries (transient errors retried: "
                             f"{_retry_summary(result)}); the disruption said: "
                             f"{' | '.join(d.output.splitlines()[0] for d in result.disruptions if d.output)}",
                             values=c, evidence=ev))
    return out


def _retry_summary(result: ResilienceResult) -> str:
    kinds: dict[str, int] = {}
    for f in result.flows:
        for n in f.notes:
            what = n.split(":", 1)[0]
            kinds[what] = kinds.get(what, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())) or "none"


def describe(result: ResilienceResult) -> str:
    """A few lines for a person: the counts, the disruptions' output, the first problems."""
    c = result.counts()
    lines = [f"{result.label}: " + ", ".join(f"{k} {v}" for k, v in c.items()) + f" in {result.seconds:.1f} s"]
    for d in result.disruptions:
        lines.append(f"  disruption rc={d.rc} {d.ended - d.started:.2f} s: " + " | ".join(d.output.splitlines()[-3:]))
    for f in result.failed[:5]:
        lines.append(f"  failed {f.customer}: {f.failure}")
    for w in result.wrong_answers[:5]:
        lines.append(f"  wrong: {w}")
    retried = [n for f in result.flows for n in f.notes][:5]
    lines += [f"  retry: {n}" for n in retried]
    return "\n".join(lines)


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]
