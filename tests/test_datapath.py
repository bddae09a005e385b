"""The data-path library without a cluster: the stdlib SigV4 signer against botocore's, generated contents and
their digests, the plan's in-flight cap, tidy rows and the judgement (wrong data, missing objects, thresholds)."""

from __future__ import annotations

import datetime
import hashlib

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from clusterproof.findings import Criterion, Status
from clusterproof.inventory_storage import DataPathThreshold, PerformanceSettings
from clusterproof.storage import datapath as dp
from clusterproof.storage import datapath_client as dc

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////wEaDA=="])
@pytest.mark.parametrize(("method", "key", "query"), [
    ("PUT", "data/a b/ü+x", []),
    ("GET", None, [("list-type", "2"), ("prefix", "data/"), ("max-keys", "1000")]),
    ("PUT", "data/obj", [("partNumber", "3"), ("uploadId", "2~abc/def=")]),
    ("POST", "data/obj", [("uploads", "")]),
])
def test_sigv4_matches_botocore(method: str, key: str | None, query: list[tuple[str, str]], token: str | None,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    host, bucket = "127.0.0.1:7480", "bkt"
    path = "/" + dc._quote(bucket) + ("/" + dc._quote(key, safe="-_.~/") if key is not None else "")
    empty = hashlib.sha256(b"").hexdigest()  # botocore hashes the (empty) body over plain http
    mine = dc.sign(method, host, path, query, {"content-length": "0"}, "AKIDEXAMPLE", "secret/key+x", token,
                   "default", now=NOW, payload_hash=empty)
    url = f"http://{host}{path}" + ("?" + "&".join(f"{dc._quote(k)}={dc._quote(v)}" for k, v in query) if query else "")
    req = AWSRequest(method=method, url=url, headers={"content-length": "0"}, data=b"")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret/key+x", token), "s3", "default").add_auth(req)
    assert mine["Authorization"] == req.headers["Authorization"]
    assert mine.get("x-amz-security-token") == req.headers.get("X-Amz-Security-Token")


def test_contents_are_distinct_and_digests_cover_ranges() -> None:
    size = dc.CHUNK * 2 + 123
    whole = b"".join(dc.chunks("k1", size))
    assert len(whole) == size and whole != b"".join(dc.chunks("k2", size))
    assert dc.digest_of("k1", size) == hashlib.sha256(whole).hexdigest()
    body = dc._Body("k1", size, start=dc.CHUNK - 10, length=dc.CHUNK + 20)
    got = b"".join(iter(lambda: body.read(4096), b""))
    assert got == whole[dc.CHUNK - 10: 2 * dc.CHUNK + 10]


def test_plan_skips_steps_above_the_inflight_cap() -> None:
    perf = PerformanceSettings(sizes=(4096, 256 << 20), concurrency=(1, 4), max_inflight_bytes=512 << 20)
    steps = dp.plan(perf, 1)
    assert [(s.size, s.concurrency, s.skipped is None) for s in steps] == [
        (4096, 1, True), (4096, 4, True), (256 << 20, 1, True), (256 << 20, 4, False)]
    assert "1G in flight" in str(steps[-1].skipped)


def test_percentile() -> None:
    assert dp.percentile([], 50) is None
    assert dp.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert dp.percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)


def _answer(client: str = "head", wrong: bool = False, objects: int = 2) -> dict:
    size, conc = 1 << 20, 1
    samples = [{"op": op, "size": size, "concurrency": conc, "latency_s": 0.01 * (i + 1), "ttfb_s": 0.001,
                "bytes": size, "verified": op == "get" and not (wrong and i == 0), "client": client}
               for op in ("put", "get") for i in range(objects)]
    phases = [{"op": op, "size": size, "concurrency": conc, "wall_s": 0.02, "objects": objects,
               "bytes": objects * size, "t_start": 100.0, "t_end": 100.02, "client": client} for op in ("put", "get")]
    errors = [{"op": "get", "size": size, "concurrency": conc, "key": "k", "mismatch": True,
               "error": "content differs"}] if wrong else []
    return {"client": client, "samples": samples, "phases": phases, "errors": errors}


def test_rows_and_findings_of_a_good_run() -> None:
    perf = PerformanceSettings(sizes=(1 << 20,), concurrency=(1,), objects=2,
                               thresholds={1 << 20: DataPathThreshold(min_put_gbs=0.01, min_get_gbs=0.01)})
    rows = dp.tidy_rows([_answer()], "sts", "head", "measured")
    assert [r["op"] for r in rows] == ["put", "get"]
    assert rows[0]["gbs"] == pytest.approx(2 * (1 << 20) / 0.02 / 1e9, rel=1e-3)
    assert rows[1]["verified"] == 2 and rows[1]["ttfb_p50_ms"] == 1.0
    found = dp.check_datapath([_answer()], rows, dp.plan(perf, 1), perf, "sts", "measured")
    assert {f.status for f in found} == {Status.PASS} and all(f.criterion is Criterion.DATA_PATH for f in found)


def test_wrong_data_and_slow_throughput_fail() -> None:
    perf = PerformanceSettings(sizes=(1 << 20,), concurrency=(1,), objects=2,
                               thresholds={4096: DataPathThreshold(min_get_gbs=1000.0)})
    answers = [_answer("node01"), _answer("node02", wrong=True)]
    rows = dp.tidy_rows(answers, "http", "2nodes", "measured")
    found = dp.check_datapath(answers, rows, dp.plan(perf, 2), perf, "http", "measured")
    fails = [f.message for f in found if f.status is Status.FAIL]
    assert any("node02: wrong data" in m for m in fails)
    assert any("4 of 4 objects written, 3 read back and verified" in m for m in fails)
    assert any("< 1000 GB/s" in m for m in fails)
    assert [f.subject.node for f in found if "wrong data" in f.message] == ["node02"]


def test_an_unreachable_node_fails_by_name() -> None:
    perf = PerformanceSettings(sizes=(4096,), concurrency=(1,), objects=1)
    answers = [dp._failed_answer("node03", "could not run the client: connection refused")]
    found = dp.check_datapath(answers, [], dp.plan(perf, 1), perf, "rgw-user", "measured")
    assert any(f.status is Status.FAIL and f.subject.node == "node03" for f in found)
