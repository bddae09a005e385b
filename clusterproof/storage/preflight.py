"""Before any storage test: does the RGW the inventory names answer, are the keys it names in the environment,
does the admin API take them? One :class:`~clusterproof.findings.Finding` (``Criterion.STORAGE_PREFLIGHT``) says
so, with one clear line; and :func:`is_connection_loss` tells "RGW stopped answering" apart from a real answer, so
a dead RGW in the middle of a run is one line, not hundreds of tracebacks.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from clusterproof.findings import Criterion, Finding, Subject, failed, passed
from clusterproof.inventory import StorageSettings
from clusterproof.storage.admin import RgwAdminSession
from clusterproof.storage.model import IssuerError


def _subject(storage: StorageSettings) -> Subject:
    return Subject("endpoint", storage.endpoint)


def endpoint_answers(endpoint: str, timeout_s: float = 5.0) -> str | None:
    """None when something answers HTTP at ``endpoint`` (any status: RGW answers 403 anonymously), else why not."""
    try:
        urllib.request.urlopen(endpoint, timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, "reason", e))
    return None


def missing_keys(storage: StorageSettings) -> list[str]:
    """The environment variables the storage section names for the admin keys that are unset or empty."""
    missing = []
    for attr in ("admin_access_key_env", "admin_secret_key_env"):
        name = getattr(storage, attr)
        if not name:
            missing.append(f"storage.{attr} (not set in the inventory)")
        elif not storage.env_value(attr):
            missing.append(f"${name}")
    return missing


def preflight(storage: StorageSettings) -> list[Finding]:
    """One PASS, or one FAIL whose message is the single line to show for the whole storage area."""
    subject = _subject(storage)
    missing = missing_keys(storage)
    if missing:
        return [failed(Criterion.STORAGE_PREFLIGHT, subject,
                       f"storage preflight: admin keys not in the environment ({', '.join(missing)}): no storage test can run")]
    why = endpoint_answers(storage.endpoint)
    if why is not None:
        return [failed(Criterion.STORAGE_PREFLIGHT, subject, f"storage preflight: RGW at {storage.endpoint} does not answer ({why})")]
    access, secret = storage.env_value("admin_access_key_env"), storage.env_value("admin_secret_key_env")
    assert access and secret
    try:
        admin = RgwAdminSession(storage.endpoint, access, secret, region=storage.region, timeout_s=10.0)
        admin.uid  # noqa: B018 -- the admin API with these keys: the cheapest call that needs them
    except (IssuerError, ValueError) as e:
        return [failed(Criterion.STORAGE_PREFLIGHT, subject, f"storage preflight: the RGW admin API at {storage.endpoint} refused the admin keys: {e}")]
    return [passed(Criterion.STORAGE_PREFLIGHT, subject, f"RGW at {storage.endpoint} answers and takes the admin keys")]


_LOST = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectionError)
_LOST_TEXT = ("Could not connect to the endpoint URL", "Connection refused", "Connection was closed", "Read timeout",
              "Max retries exceeded", "Connection aborted", "RemoteDisconnected", "EndpointConnectionError",
              "ConnectionClosedError", "ReadTimeoutError")


def is_connection_loss(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) says the RGW did not answer at all, not that it refused."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, _LOST):
            return True
        if any(t in str(seen) for t in _LOST_TEXT):
            return True  # an issuer error, or a check that recorded "no response <error>" as RGW's answer
        seen = seen.__cause__ or seen.__context__
    return False
