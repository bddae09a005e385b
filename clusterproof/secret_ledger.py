"""Every secret a run minted, known to the "no secret in reports" scan without being kept anywhere.

Each process of a run (the controller, every xdist worker, ``clusterproof report build`` later) opens the run's
ledger: ``<run>/.secret-fingerprints/`` (mode 0700) holds a random salt (``salt``, mode 0600) and, per process, one
salted fingerprint a line (HMAC-SHA256 of the secret under the salt, with the secret's length). The secret itself is
never written. The scan (:func:`find_minted`) cuts every file into candidate tokens and compares their fingerprints,
so a key minted in a worker and leaked raw into a log is found by the controller and by a rebuild alike.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

LEDGER_DIR = ".secret-fingerprints"
#: Characters a key, secret or session token is made of (base64, base64url, hex, AWS key ids).
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{6,}")
#: A token longer than this is not slid over in windows (base64 blobs); only its pieces are tried.
_MAX_WINDOW_TOKEN = 512
MIN_SECRET_LEN = 6


def _salt(folder: Path) -> bytes:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "salt"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def fingerprint(salt: bytes, value: str) -> str:
    return hmac.new(salt, value.encode(), hashlib.sha256).hexdigest()[:32]


class SecretLedger:
    """Appends the fingerprint of each secret this process registers to ``<run>/.secret-fingerprints/<process>``."""

    def __init__(self, run_dir: Path, process: str = "main") -> None:
        self.dir = Path(run_dir) / LEDGER_DIR
        self.salt = _salt(self.dir)
        self.path = self.dir / f"{process}.fp"
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def add(self, secret: str) -> None:
        if not secret or len(secret) < MIN_SECRET_LEN:
            return
        fp = fingerprint(self.salt, secret)
        with self._lock:
            if fp in self._seen:
                return
            self._seen.add(fp)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as fh:
                fh.write(f"{len(secret)} {fp}\n")


class Fingerprints:
    """The fingerprints of every secret of a run, by length, for the scan."""

    def __init__(self, salt: bytes, by_length: dict[int, set[str]]) -> None:
        self.salt = salt
        self.by_length = by_length

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_length.values())

    def _matches(self, candidate: str) -> bool:
        fps = self.by_length.get(len(candidate))
        return bool(fps) and fingerprint(self.salt, candidate) in fps  # type: ignore[operator]

    def contains_secret(self, text: str) -> bool:
        """True when a registered secret occurs in ``text`` (as a token, or inside a longer token)."""
        if not self.by_length:
            return False
        lengths = sorted(self.by_length)
        for m in _TOKEN.finditer(text):
            token = m.group(0)
            if self._matches(token):
                return True
            if len(token) > _MAX_WINDOW_TOKEN:
                pieces: Iterable[str] = re.split(r"[=_\-]", token)
                if any(self._matches(p) for p in pieces):
                    return True
                continue
            for n in lengths:
                if n < len(token) and any(self._matches(token[i:i + n]) for i in range(len(token) - n + 1)):
                    return True
        return False


def load_fingerprints(run_dir: Path) -> Fingerprints:
    """Every fingerprint any process of the run wrote (none when the run kept no ledger)."""
    folder = Path(run_dir) / LEDGER_DIR
    if not (folder / "salt").is_file():
        return Fingerprints(b"", {})
    by_length: dict[int, set[str]] = {}
    for path in sorted(folder.glob("*.fp")):
        for line in path.read_text(encoding="ascii", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                by_length.setdefault(int(parts[0]), set()).add(parts[1])
    return Fingerprints((folder / "salt").read_bytes(), by_length)
