"""Storage speed goals: the whole storage suite with ``-n 4`` (target: under 60 s), a reaped credential denied
on the very next request (time from the start of the reap to the first denied request), and the data-path
harness's overhead: the suite's client (``clusterproof.storage.datapath``, digest per object) against a plain boto3
loop doing the same PUTs and GETs with the same credential, as a ratio (goal <= 1.05; exit 1 on a miss).

    python bench/storage.py                       # starts its own RGW + credential service, stops them after
    python bench/storage.py --cluster inv.yaml    # an existing sandbox or cluster inventory with a storage section
    python bench/storage.py --skip-suite --repeat 20
    python bench/storage.py --skip-suite --repeat 0 --datapath-rounds 5    # only the data-path overhead
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import yaml

from clusterproof.inventory import StorageSettings, load_inventory, read_env_file
from clusterproof.inventory_storage import PerformanceSettings
from clusterproof.storage import (
    CredentialIssuer,
    HttpIssuer,
    RgwAdminSession,
    RgwUserIssuer,
    StsIssuer,
    s3_client,
)
from clusterproof.storage import datapath as dp
from clusterproof.storage.cleanup import delete_bucket
from clusterproof.storage.matrix import ALLOW, DENY, attempt

ROOT = Path(__file__).resolve().parents[1]
SUITE_TARGET_S = 60.0
OVERHEAD_GOAL = 1.05
#: The transfers both sides make: sizes up to the part size (boto3's put_object sends one request, like the
#: harness below its multipart threshold), each at two concurrencies.
BENCH_SIZES = (1 << 20, 4 << 20, 16 << 20)
BENCH_CONCURRENCY = (1, 4)
BENCH_OBJECTS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_storage() -> Iterator[Path]:
    """A fresh RGW and credential service on free ports; yields an inventory naming them."""
    from clusterproof.sandbox import rgw

    state = Path(tempfile.mkdtemp(prefix="cp-bench-rgw-"))
    info = rgw.start(state, port=_free_port(), mon_port=_free_port(), sts_min_duration=5)
    token = secrets.token_urlsafe(24)
    secrets_file = state / "bench-secrets.env"
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(info.secrets_file.read_text() + f"{rgw.CREDENTIALS_TOKEN_ENV}={token}\n")
    port = _free_port()
    env = {**os.environ, "CP_RGW_ENDPOINT": info.endpoint, **read_env_file(secrets_file)}
    log = open(state / "service.log", "ab")  # noqa: SIM115 - handed to the child
    service = subprocess.Popen([sys.executable, "-m", "clusterproof.cli", "serve-credentials", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                if service.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"credential service did not start; see {state / 'service.log'}") from None
                time.sleep(0.1)
        inventory = state / "inventory.yaml"
        inventory.write_text(yaml.safe_dump({
            "name": "bench-storage",
            "nodes": [{"name": "node01", "host": "127.0.0.1"}],
            "ssh": {"strict_host_keys": False},
            "storage": rgw.storage_inventory_section(info, http_base_url=url),
            "env_file": str(secrets_file),
        }, sort_keys=False))
        yield inventory
    finally:
        service.terminate()
        service.wait(timeout=10)
        log.close()
        rgw.stop(state)


def run_suite(inventory: Path, workers: int) -> tuple[float, str]:
    reports = tempfile.mkdtemp(prefix="cp-bench-reports-")  # the result parts go here, not into reports/
    cmd = [sys.executable, "-m", "pytest", "suites/storage", "--cluster", str(inventory), "-n", str(workers),
           "-q", "-p", "no:cacheprovider", "--no-report", "--reports-dir", reports]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    shutil.rmtree(reports, ignore_errors=True)
    summary = next((line for line in reversed(proc.stdout.splitlines()) if re.search(r"\d+ (passed|failed)", line)),
                   proc.stdout[-500:] + proc.stderr[-500:])
    return elapsed, summary.strip("= ")


def issuers(storage: StorageSettings, access: str, secret: str) -> dict[str, CredentialIssuer]:
    out: dict[str, CredentialIssuer] = {
        "rgw-user": RgwUserIssuer(storage.endpoint, access, secret, region=storage.region),
        "sts": StsIssuer(storage.endpoint, access, secret, region=storage.region, assumer_uid="cpb-bench-assumer"),
    }
    token = storage.env_value("http_token_env")
    if storage.http_base_url and token:
        out["http"] = HttpIssuer(storage.http_base_url, token)
    return out


def reap_to_denial(issuer: CredentialIssuer, storage: StorageSettings, bucket: str, repeat: int) -> list[tuple[float, float, bool]]:
    """Per run: (reap duration s, reap start -> first request answered s, was that very request denied)."""
    runs = []
    for i in range(repeat):
        customer = f"cpb-reap-{secrets.token_hex(3)}"
        cred = issuer.issue(customer, bucket, f"r{i}/", 600)
        client = s3_client(storage.endpoint, region=storage.region, **cred.client_kwargs())
        probe = lambda c=client, p=cred.prefix: c.list_objects_v2(Bucket=bucket, Prefix=p)  # noqa: E731
        if attempt(probe).observed != ALLOW:
            raise SystemExit(f"bench: a fresh {issuer.kind} credential does not work")
        t0 = time.monotonic()
        deleted = issuer.reap(customer, now=cred.expires_at + timedelta(seconds=3))
        t_reaped = time.monotonic()
        denied = attempt(probe).observed == DENY
        t_answer = time.monotonic()
        if cred.id not in deleted:
            raise SystemExit(f"bench: reap did not report {cred.id}")
        runs.append((t_reaped - t0, t_answer - t0, denied))
    return runs


def _threads(n: int, fn: object) -> float:
    import threading

    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait()
        fn(i)  # type: ignore[operator]

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def boto3_loop(cred: object, storage: StorageSettings, bucket: str) -> float:
    """Seconds of PUT and GET phases of a plain boto3 loop over the same steps (one client per thread)."""
    total = 0.0
    for size in BENCH_SIZES:
        body = os.urandom(size)
        for conc in BENCH_CONCURRENCY:
            clients = [s3_client(storage.endpoint, region=storage.region, **cred.client_kwargs())  # type: ignore[attr-defined]
                       for _ in range(conc)]
            keys = [[f"{cred.prefix}boto3/s{size}-c{conc}/t{t}-{i}" for i in range(BENCH_OBJECTS)]  # type: ignore[attr-defined]
                    for t in range(conc)]
            total += _threads(conc, lambda t, c=clients, ks=keys, b=body: [
                c[t].put_object(Bucket=bucket, Key=k, Body=b) for k in ks[t]])
            total += _threads(conc, lambda t, c=clients, ks=keys: [
                c[t].get_object(Bucket=bucket, Key=k)["Body"].read() for k in ks[t]])
            for t in range(conc):
                for k in keys[t]:
                    clients[t].delete_object(Bucket=bucket, Key=k)
    return total


def harness(cred: object, storage: StorageSettings) -> float:
    """Seconds of the PUT and GET phases the suite's data-path client measured over the same steps."""
    perf = PerformanceSettings(sizes=BENCH_SIZES, concurrency=BENCH_CONCURRENCY, objects=BENCH_OBJECTS,
                               part_size=max(BENCH_SIZES), list_keys=0)
    job = dp.make_job(cred, storage.endpoint, storage.region, perf, "bench", dp.plan(perf, 1))  # type: ignore[arg-type]
    answer = dp.run_local(job)
    if answer["errors"]:
        raise SystemExit(f"bench: the data-path client reported errors: {answer['errors'][:3]}")
    return sum(float(ph["wall_s"]) for ph in answer["phases"] if ph["op"] in ("put", "get"))


def datapath_overhead(issuer: CredentialIssuer, storage: StorageSettings, bucket: str, rounds: int) -> float:
    """Median of ``rounds`` ratios harness / boto3 (alternating which goes first); prints each round."""
    cred = issuer.issue(f"cpb-dp-{secrets.token_hex(3)}", bucket, "dp/", 3600)
    ratios = []
    try:
        for i in range(rounds):
            if i % 2:
                plain, ours = boto3_loop(cred, storage, bucket), harness(cred, storage)
            else:
                ours, plain = harness(cred, storage), boto3_loop(cred, storage, bucket)
            ratios.append(ours / plain)
            print(f"  round {i + 1}: harness {ours:.3f} s, plain boto3 loop {plain:.3f} s -> ratio {ours / plain:.3f}")
    finally:
        issuer.revoke(cred)
    return statistics.median(ratios)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", help="inventory with a storage section (default: start an own RGW)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10, help="reap measurements per issuer kind")
    ap.add_argument("--skip-suite", action="store_true", help="only measure reap -> denial")
    ap.add_argument("--datapath-rounds", type=int, default=3, help="data-path overhead rounds (0: skip)")
    args = ap.parse_args()
    with (own_storage() if not args.cluster else _existing(Path(args.cluster))) as inventory:
        inv = load_inventory(inventory)
        if inv.env_file is not None:
            for key, value in read_env_file(inv.env_file).items():
                os.environ.setdefault(key, value)
        storage = inv.storage
        if storage is None:
            raise SystemExit(f"{inventory}: no storage section")
        if not args.skip_suite:
            elapsed, summary = run_suite(inventory, args.workers)
            print(f"storage suite, -n {args.workers}: {elapsed:.1f} s ({summary}); "
                  f"target {SUITE_TARGET_S:.0f} s -> ratio {elapsed / SUITE_TARGET_S:.2f}")
        access, secret = storage.env_value("admin_access_key_env"), storage.env_value("admin_secret_key_env")
        if not access or not secret:
            raise SystemExit("bench: the admin key variables named in the inventory are not set")
        kinds = issuers(storage, access, secret)
        admin = RgwAdminSession(storage.endpoint, access, secret, region=storage.region)
        bucket = f"cpb-reap-{secrets.token_hex(4)}"
        admin.s3.create_bucket(Bucket=bucket)
        missed = False
        try:
            if args.datapath_rounds:
                mb = sum(BENCH_SIZES) * sum(BENCH_CONCURRENCY) * BENCH_OBJECTS / 1e6
                print(f"data-path harness overhead ({mb:.0f} MB up and down per side per round, rgw-user credential):")
                ratio = datapath_overhead(kinds["rgw-user"], storage, bucket, args.datapath_rounds)
                missed = ratio > OVERHEAD_GOAL
                print(f"data-path harness / plain boto3: ratio {ratio:.3f} (goal <= {OVERHEAD_GOAL}) "
                      f"{'MISSED' if missed else 'met'}")
            for kind, issuer in kinds.items():
                if not args.repeat:
                    break
                runs = reap_to_denial(issuer, storage, bucket, args.repeat)
                reap_ms = statistics.median(r[0] for r in runs) * 1000
                first_ms = statistics.median(r[1] for r in runs) * 1000
                worst_ms = max(r[1] for r in runs) * 1000
                denied = sum(r[2] for r in runs)
                print(f"{kind:8} reap -> first request denied: {denied}/{len(runs)} runs denied on the very next "
                      f"request; median reap {reap_ms:.0f} ms, reap start -> denial median {first_ms:.0f} ms "
                      f"(worst {worst_ms:.0f} ms)")
        finally:
            sts = kinds["sts"]
            if isinstance(sts, StsIssuer):
                sts.remove_assumer()
            delete_bucket(admin.s3, bucket)
    return 1 if missed else 0


@contextmanager
def _existing(path: Path) -> Iterator[Path]:
    yield path


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so the RGW and service this bench started are stopped by its finally blocks


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
