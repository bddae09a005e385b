"""The data-path client: PUT, GET (with time to first byte) and LIST through one temporary credential, every object
read back checked against the digest of what was written. Standard library only, Python >= 3.8, one file.

Why no boto3: it is what a cluster node is least likely to have (a GPU image ships python3, rarely the AWS SDK,
and installing packages on a customer's nodes is not an acceptance test's business). Requests are signed with AWS
Signature Version 4 written out here (``sign``; ``tests/test_datapath_client.py`` checks it against botocore's
signer), with ``x-amz-content-sha256: UNSIGNED-PAYLOAD`` so that a 256 MiB body is not hashed twice.

The same file runs in two ways:

- imported on the head node (``run_job(job)``), and
- shipped to each cluster node over SSH and run as ``python3 <file>`` with the job as JSON on stdin (the credential
  travels on stdin, never on a command line); the answer is one JSON document on stdout.

A job: ``{"endpoint", "region", "access_key", "secret_key", "session_token", "bucket", "prefix", "client",
"sizes": [bytes...], "concurrency": [n...], "objects": n, "part_size": bytes, "list_keys": n, "deadline_s": s}``.
For each (size, concurrency) the client PUTs ``objects`` objects per thread, then GETs them all back, then deletes
them (objects above ``part_size`` go up as multipart uploads). Object contents are generated, not stored: chunk
``j`` of key ``k`` starts with sha256(k, j), so every object differs and a misplaced or torn chunk changes the digest.
The answer: ``{"client", "samples": [...], "phases": [...], "errors": [...]}``: one sample per request, one phase
per (operation, size, concurrency) with its wall time.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload
from xml.etree import ElementTree

if TYPE_CHECKING:  # typing only: nothing here runs on the nodes
    from typing import Protocol

    class _Note(Protocol):
        """``note(kind, **row)``: records one sample (``kind == "sample"``) or error row."""

        def __call__(self, kind: str, **row: Any) -> None: ...

_T = TypeVar("_T")

CHUNK = 1 << 20
UNSIGNED = "UNSIGNED-PAYLOAD"
_BASE = os.urandom(CHUNK)


# --- signing ---------------------------------------------------------------------------------------------------


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def sign(method: str, host: str, path: str, query: Iterable[tuple[str, str]], headers: Mapping[str, str],
         access_key: str, secret_key: str, session_token: str | None, region: str,
         now: datetime.datetime | None = None, payload_hash: str = UNSIGNED) -> dict[str, str]:
    """The headers (``Authorization``, ``x-amz-date``, ``x-amz-content-sha256``, maybe ``x-amz-security-token``)
    that make ``method host path?query`` an AWS SigV4-signed S3 request. ``path`` is already URL-encoded;
    ``query`` is a list of (name, value) pairs, not encoded."""
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - the nodes may run Python < 3.11
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    out = dict(headers)
    out["host"] = host
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    if session_token:
        out["x-amz-security-token"] = session_token
    canon_headers = sorted((k.lower().strip(), " ".join(str(v).split())) for k, v in out.items())
    signed = ";".join(k for k, _ in canon_headers)
    canon_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query))
    canonical = "\n".join([method, path, canon_query, "".join(f"{k}:{v}\n" for k, v in canon_headers), signed,
                           payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    del out["host"]
    return out


# --- contents ---------------------------------------------------------------------------------------------------


def chunks(key: str, size: int) -> Iterator[bytes]:
    """The generated contents of ``key`` (``size`` bytes), in chunks of at most 1 MiB."""
    done, j = 0, 0
    while done < size:
        n = min(CHUNK, size - done)
        head = hashlib.sha256(f"{key}\0{j}".encode()).digest()
        yield (head + _BASE[len(head):n])[:n]
        done += n
        j += 1


def digest_of(key: str, size: int, start: int = 0, length: int | None = None) -> str:
    """sha256 of bytes ``start .. start+length`` of ``key``'s contents."""
    length = size - start if length is None else length
    h = hashlib.sha256()
    pos = 0
    for c in chunks(key, size):
        lo, hi = max(start - pos, 0), min(start + length - pos, len(c))
        if lo < hi:
            h.update(c[lo:hi])
        pos += len(c)
        if pos >= start + length:
            break
    return h.hexdigest()


class _Body:
    """A file-like body over ``chunks`` (http.client sends it piece by piece, never the whole object at once)."""

    def __init__(self, key: str, size: int, start: int = 0, length: int | None = None) -> None:
        self._it = chunks(key, size)
        self._skip = start
        self._left = size - start if length is None else length
        self._cur = memoryview(b"")

    def read(self, n: int | None = -1) -> bytes:
        while not len(self._cur) and self._left > 0:
            c = next(self._it, b"")
            if not c:
                return b""
            if self._skip:
                cut = min(self._skip, len(c))
                c, self._skip = c[cut:], self._skip - cut
            c = c[: self._left]
            self._left -= len(c)
            self._cur = memoryview(c)
        n = len(self._cur) if n is None or n < 0 else n
        out, self._cur = self._cur[:n], self._cur[n:]
        return bytes(out)


# --- requests ---------------------------------------------------------------------------------------------------


class S3Error(Exception):
    def __init__(self, what: str, status: int, body: bytes) -> None:
        code = ""
        try:
            code = ElementTree.fromstring(body).findtext("Code") or ""
        except ElementTree.ParseError:
            pass
        super().__init__(f"{what}: HTTP {status} {code}".strip())
        self.status = status
        self.code = code


class Client:
    """One keep-alive connection to the endpoint, signing with one credential. Not thread-safe: one per thread."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        parts = urllib.parse.urlsplit(job["endpoint"])
        self.https = parts.scheme == "https"
        self.host = parts.netloc
        self.job = job
        self.timeout = float(job.get("timeout_s", 60))
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self.conn = cls(self.host, timeout=self.timeout, blocksize=CHUNK)
        return self.conn

    @overload
    def request(self, method: str, key: str | None, query: Sequence[tuple[str, str]] = ...,
                body: bytes | _Body | None = ..., length: int = ..., headers: Mapping[str, str] | None = ...,
                sink: None = ...) -> tuple[int, dict[str, str], bytes, float, float]: ...

    @overload
    def request(self, method: str, key: str | None, query: Sequence[tuple[str, str]] = ...,
                body: bytes | _Body | None = ..., length: int = ..., headers: Mapping[str, str] | None = ..., *,
                sink: Callable[[bytes], None]) -> tuple[int, dict[str, str], bytes | None, float, float]: ...

    def request(self, method: str, key: str | None, query: Sequence[tuple[str, str]] = (),
                body: bytes | _Body | None = None, length: int = 0, headers: Mapping[str, str] | None = None,
                sink: Callable[[bytes], None] | None = None) -> tuple[int, dict[str, str], bytes | None, float, float]:
        """Send one request; returns (status, headers, body bytes or None when ``sink`` took it, ttfb_s, total_s).
        ``sink(chunk)`` receives a GET body as it arrives."""
        path = "/" + _quote(self.job["bucket"]) + ("/" + _quote(key, safe="-_.~/") if key is not None else "")
        hdrs = dict(headers or {})
        if body is not None or method in ("PUT", "POST"):
            hdrs["content-length"] = str(length)
        hdrs = sign(method, self.host, path, list(query), hdrs, self.job["access_key"], self.job["secret_key"],
                    self.job.get("session_token"), self.job.get("region") or "default")
        url = path + ("?" + "&".join(f"{_quote(k)}={_quote(v)}" if v != "" else _quote(k) for k, v in query) if query else "")
        for attempt in (0, 1):  # one reconnect: the server may have closed an idle keep-alive connection
            conn = self.conn
            if conn is None:
                conn = self._connect()
            t0 = time.perf_counter()
            try:
                conn.request(method, url, body=body, headers=hdrs, encode_chunked=False)
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self.conn = None
                if attempt or (body is not None and not hasattr(body, "decode")):
                    raise
                continue
            ttfb = time.perf_counter() - t0
            if sink is not None and resp.status < 300:
                while True:
                    c = resp.read(CHUNK)
                    if not c:
                        break
                    sink(c)
                data = None
            else:
                data = resp.read()
            total = time.perf_counter() - t0
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                self.conn = None
            return resp.status, dict(resp.getheaders()), data, ttfb, total
        raise ConnectionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    # S3 operations, each raising S3Error on an error status
    def put(self, key: str, size: int) -> tuple[float, float]:
        status, _, data, ttfb, total = self.request("PUT", key, body=_Body(key, size), length=size)
        if status != 200:
            raise S3Error(f"PUT {key}", status, data)
        return ttfb, total

    def put_multipart(self, key: str, size: int, part_size: int) -> tuple[None, float]:
        t0 = time.perf_counter()
        status, _, data, _, _ = self.request("POST", key, query=[("uploads", "")], body=b"", length=0)
        if status != 200:
            raise S3Error(f"CreateMultipartUpload {key}", status, data)
        upload_id = _find(data, "UploadId")
        parts = []
        try:
            for n, start in enumerate(range(0, size, part_size), 1):
                length = min(part_size, size - start)
                status, hdrs, data, _, _ = self.request("PUT", key, query=[("partNumber", str(n)), ("uploadId", upload_id)],
                                                        body=_Body(key, size, start, length), length=length)
                if status != 200:
                    raise S3Error(f"UploadPart {n} of {key}", status, data)
                etag = {k.lower(): v for k, v in hdrs.items()}.get("etag", "")
                parts.append(f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>")
            doc = ("<CompleteMultipartUpload>" + "".join(parts) + "</CompleteMultipartUpload>").encode()
            status, _, data, _, _ = self.request("POST", key, query=[("uploadId", upload_id)], body=doc, length=len(doc))
            if status != 200 or b"<Error>" in (data or b""):
                raise S3Error(f"CompleteMultipartUpload {key}", status, data)
        except BaseException:
            try:
                self.request("DELETE", key, query=[("uploadId", upload_id)])
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        return None, time.perf_counter() - t0

    def get(self, key: str) -> tuple[str, int, float, float]:
        """Returns (sha256 hex of the body, bytes received, ttfb_s, total_s)."""
        h = hashlib.sha256()
        got = [0]

        def sink(c: bytes) -> None:
            h.update(c)
            got[0] += len(c)

        status, _, data, ttfb, total = self.request("GET", key, sink=sink)
        if status != 200:
            # data is None for a 2xx other than 200 (the sink took the body): the error says the status, not a
            # TypeError from parsing None
            raise S3Error(f"GET {key}", status, data or b"")
        return h.hexdigest(), got[0], ttfb, total

    def delete(self, key: str) -> None:
        status, _, data, _, _ = self.request("DELETE", key)
        if status not in (200, 204, 404):
            raise S3Error(f"DELETE {key}", status, data)

    def list_prefix(self, prefix: str) -> tuple[list[str], int, float]:
        """Every key under ``prefix`` (ListObjectsV2, paged). Returns (keys, requests, seconds)."""
        keys: list[str]
        token: str | None
        keys, token, pages, t0 = [], None, 0, time.perf_counter()
        while True:
            query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")]
            if token:
                query.append(("continuation-token", token))
            status, _, data, _, _ = self.request("GET", None, query=query)
            pages += 1
            if status != 200:
                raise S3Error(f"ListObjectsV2 {prefix}", status, data)
            root = ElementTree.fromstring(data)
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            keys += [e.text or "" for e in root.iter(f"{ns}Key")]
            token = root.findtext(f"{ns}NextContinuationToken")
            if root.findtext(f"{ns}IsTruncated") != "true" or not token:
                return keys, pages, time.perf_counter() - t0


def _find(xml_bytes: bytes, tag: str) -> str:
    root = ElementTree.fromstring(xml_bytes)
    for e in root.iter():
        if e.tag.endswith(tag):
            return e.text or ""
    raise ValueError(f"no {tag} in the answer")


# --- the job ----------------------------------------------------------------------------------------------------


def _threads(n: int, fn: Callable[[int], _T]) -> tuple[list[_T | None], float, float, float]:
    out: list[_T | None] = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = fn(i)

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    t0, w0 = time.perf_counter(), time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    return out, wall, w0, w0 + wall


def run_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Run the whole job; never raises for S3 trouble (errors are in the answer)."""
    me: str = job.get("client", "head")
    samples: list[dict[str, Any]]
    phases: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    samples, phases, errors = [], [], []
    lock = threading.Lock()
    deadline = time.monotonic() + float(job.get("deadline_s", 600))
    part_size = int(job.get("part_size", 16 << 20))

    def note(kind: str, **row: Any) -> None:
        with lock:
            (samples if kind == "sample" else errors).append(dict(row, client=me))

    steps = job.get("steps") or [[size, conc] for size in job["sizes"] for conc in job["concurrency"]]
    if job.get("start_at"):
        time.sleep(max(0.0, min(30.0, float(job["start_at"]) - time.time())))  # every client starts together
    size: int
    conc: int
    for size, conc in steps:
        if time.monotonic() > deadline:
            errors.append({"client": me, "op": "job", "size": size, "concurrency": conc,
                           "error": "deadline passed before this step", "key": ""})
            continue
        per = int(job.get("objects", 1))
        base = f"{job['prefix']}{me}/s{size}-c{conc}/"
        keys = [[f"{base}t{t}-{i}" for i in range(per)] for t in range(conc)]
        written: dict[str, str] = {}

        def put_all(t: int, size: int = size, keys: list[list[str]] = keys, conc: int = conc,
                    written: dict[str, str] = written) -> None:
            c = Client(job)
            try:
                for key in keys[t]:
                    ttfb: float | None
                    try:
                        if size > part_size:
                            ttfb, total = c.put_multipart(key, size, part_size)
                        else:
                            ttfb, total = c.put(key, size)
                        note("sample", op="put", size=size, concurrency=conc, latency_s=total, ttfb_s=ttfb,
                             bytes=size, multipart=size > part_size)
                        with lock:
                            written[key] = digest_of(key, size)
                    except Exception as e:  # noqa: BLE001 - reported, the run goes on
                        note("error", op="put", size=size, concurrency=conc, key=key, error=f"{type(e).__name__}: {e}")
            finally:
                c.close()

        _, wall, t0, t1 = _threads(conc, put_all)
        phases.append({"client": me, "op": "put", "size": size, "concurrency": conc, "wall_s": wall,
                       "objects": len(written), "bytes": len(written) * size, "t_start": t0, "t_end": t1})

        def get_all(t: int, size: int = size, keys: list[list[str]] = keys, conc: int = conc,
                    written: dict[str, str] = written) -> int:
            c = Client(job)
            ok = 0
            try:
                for key in keys[t]:
                    if key not in written:
                        continue
                    try:
                        digest, got, ttfb, total = c.get(key)
                        if got != size or digest != written[key]:
                            note("error", op="get", size=size, concurrency=conc, key=key,
                                 error=f"content differs: {got} bytes, sha256 {digest[:16]}, wrote {size} bytes, "
                                       f"sha256 {written[key][:16]}", mismatch=True)
                        else:
                            ok += 1
                        note("sample", op="get", size=size, concurrency=conc, latency_s=total, ttfb_s=ttfb,
                             bytes=got, verified=got == size and digest == written[key])
                    except Exception as e:  # noqa: BLE001
                        note("error", op="get", size=size, concurrency=conc, key=key, error=f"{type(e).__name__}: {e}")
            finally:
                c.close()
            return ok

        oks, wall, t0, t1 = _threads(conc, get_all)
        phases.append({"client": me, "op": "get", "size": size, "concurrency": conc, "wall_s": wall,
                       "objects": sum(o or 0 for o in oks), "bytes": sum(o or 0 for o in oks) * size,
                       "t_start": t0, "t_end": t1})
        _delete(job, list(written), note, size, conc)

    if int(job.get("list_keys", 0)) > 0:
        _list_step(job, note, phases, me)
    return {"client": me, "samples": samples, "phases": phases, "errors": errors}


def _delete(job: Mapping[str, Any], keys: Sequence[str], note: _Note, size: int, conc: int) -> None:
    workers = max(1, min(8, len(keys)))

    def drop(t: int) -> None:
        c = Client(job)
        try:
            for key in keys[t::workers]:
                try:
                    c.delete(key)
                except Exception as e:  # noqa: BLE001
                    note("error", op="delete", size=size, concurrency=conc, key=key, error=f"{type(e).__name__}: {e}")
        finally:
            c.close()

    if keys:
        _threads(workers, drop)


def _list_step(job: Mapping[str, Any], note: _Note, phases: list[dict[str, Any]], me: str) -> None:
    n = int(job["list_keys"])
    prefix = f"{job['prefix']}{me}/list/"
    keys = [f"{prefix}k{i:06d}" for i in range(n)]
    workers = max(1, min(8, n))

    def put_some(t: int) -> None:
        c = Client(job)
        try:
            for key in keys[t::workers]:
                try:
                    c.put(key, 1)
                except Exception as e:  # noqa: BLE001
                    note("error", op="list-put", size=1, concurrency=workers, key=key, error=f"{type(e).__name__}: {e}")
        finally:
            c.close()

    _threads(workers, put_some)
    c = Client(job)
    t_start = time.time()
    try:
        listed, pages, seconds = c.list_prefix(prefix)
        note("sample", op="list", size=0, concurrency=1, latency_s=seconds, ttfb_s=None, bytes=0, keys=len(listed),
             pages=pages)
        phases.append({"client": me, "op": "list", "size": 0, "concurrency": 1, "wall_s": seconds,
                       "objects": len(listed), "bytes": 0, "t_start": t_start, "t_end": time.time()})
        missing, extra = sorted(set(keys) - set(listed)), sorted(set(listed) - set(keys))
        if missing or extra:
            note("error", op="list", size=0, concurrency=1, key=prefix, mismatch=True,
                 error=f"listing of {prefix} differs: {len(missing)} key(s) missing (first {missing[:3]}), "
                       f"{len(extra)} unexpected (first {extra[:3]})")
    except Exception as e:  # noqa: BLE001
        note("error", op="list", size=0, concurrency=1, key=prefix, error=f"{type(e).__name__}: {e}")
    finally:
        c.close()
    _delete(job, keys, note, 0, workers)


def main() -> int:
    job = json.loads(sys.stdin.read())
    json.dump(run_job(job), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
