"""Storage speed goals: the whole storage suite with ``-n 4`` (target: under 60 s) and a reaped credential denied
on the very next request (time from the start of the reap to the first denied request).

    python bench/storage.py                       # starts its own RGW + credential service, stops them after
    python bench/storage.py --cluster inv.yaml    # an existing sandbox or cluster inventory with a storage section
    python bench/storage.py --skip-suite --repeat 20
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
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
from clusterproof.storage import (
    CredentialIssuer,
    HttpIssuer,
    RgwAdminSession,
    RgwUserIssuer,
    StsIssuer,
    s3_client,
)
from clusterproof.storage.cleanup import delete_bucket
from clusterproof.storage.matrix import ALLOW, DENY, attempt

ROOT = Path(__file__).resolve().parents[1]
SUITE_TARGET_S = 60.0


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", help="inventory with a storage section (default: start an own RGW)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10, help="reap measurements per issuer kind")
    ap.add_argument("--skip-suite", action="store_true", help="only measure reap -> denial")
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
        try:
            for kind, issuer in kinds.items():
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
    return 0


@contextmanager
def _existing(path: Path) -> Iterator[Path]:
    yield path


if __name__ == "__main__":
    sys.exit(main())
