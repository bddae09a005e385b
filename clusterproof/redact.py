"""Keep secrets out of logs and reports.

Two layers: known secret values registered at run time (S3 keys, session tokens) are replaced wherever they
appear, and patterns that look like secrets (``AWS_SECRET_ACCESS_KEY=...``, private key blocks, long
base64 tokens after a secret-ish name) are masked even when nobody registered them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

MASK = "***REDACTED***"

# Session tokens are caught by TOKEN; a bare SESSION would flag harmless names such as `session_policy`.
_SECRET_NAME = r"(?:SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY)"
#: Values that are never secrets, whatever the name (`use_token=False`).
_NOT_SECRET_VALUE = r"(?!(?:True|False|None|true|false|null)\b)"
_ENV_ASSIGN = re.compile(
    rf"(?P<name>\b[A-Za-z0-9_]*{_SECRET_NAME}[A-Za-z0-9_]*)(?P<sep>[\"']?\s*[=:]\s*)(?P<q>[\"']?){_NOT_SECRET_VALUE}(?P<value>[^\s\"',;<]+)",
    re.IGNORECASE,
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)


class Redactor:
    """Replaces registered secret values and secret-looking assignments in text. Thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._sinks: list[Callable[[str], None]] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Register a secret value; values shorter than 6 characters are ignored (too many false hits). Every sink
        (:meth:`keep_in`) hears of it too."""
        if secret and len(secret) >= 6:
            with self._lock:
                self._secrets.add(secret)
                sinks = list(self._sinks)
            for sink in sinks:
                sink(secret)

    def keep_in(self, sink: Callable[[str], None]) -> None:
        """Also hand every secret registered from now on, and every one registered so far, to ``sink`` (the run's
        :class:`~clusterproof.secret_ledger.SecretLedger`, which keeps salted fingerprints, never the value)."""
        with self._lock:
            self._sinks.append(sink)
            known = list(self._secrets)
        for secret in known:
            sink(secret)

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        """Return ``text`` with every registered secret and every secret-looking assignment masked."""
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for s in secrets:
            if s in text:
                text = text.replace(s, MASK)
        text = _PEM.sub(MASK, text)
        return _ENV_ASSIGN.sub(lambda m: f"{m['name']}{m['sep']}{m['q']}{MASK}", text)


#: The process-wide redactor: the S3 issuers register every secret they mint here, and every
#: writer of logs and reports passes text through it.
REDACTOR = Redactor()


def redact(text: str) -> str:
    """Mask secrets in ``text`` with the process-wide redactor."""
    return REDACTOR.redact(text)
