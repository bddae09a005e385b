"""The provider's side of RGW: admin ops (users, keys, buckets) through rgwadmin, IAM and bucket policies through
boto3. Shared by the rgw-user and sts issuers, the test fixtures and the cleanup sweep.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from rgwadmin.exceptions import NoSuchBucket, NoSuchKey, NoSuchUser, RGWAdminException, UserAlreadyExists
from rgwadmin.rgw import RGWAdmin

from clusterproof.redact import REDACTOR, redact
from clusterproof.storage import policy
from clusterproof.storage.client import AWS_ERRORS, answer_of, make_client
from clusterproof.storage.model import IssuerError

#: One lock per (endpoint, bucket) for every bucket-policy read-modify-write in this process. S3 has no
#: If-Match on PutBucketPolicy, so across processes only the re-read-verify loop helps, and only partly.
_POLICY_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_POLICY_LOCKS_GUARD = threading.Lock()


def _policy_lock(endpoint: str, bucket: str) -> threading.Lock:
    with _POLICY_LOCKS_GUARD:
        return _POLICY_LOCKS.setdefault((endpoint, bucket), threading.Lock())


#: Deletions in flight in this process. RGW confirms two concurrent deletes of one user to *both* callers, so
#: two reapers would both report it; a claim makes the second one skip. Reapers in different processes can
#: still both report an id (the metadata lock API answers MethodNotAllowed on a single-site RGW).
_IN_FLIGHT: set[tuple[str, str]] = set()
_IN_FLIGHT_GUARD = threading.Lock()


@contextlib.contextmanager
def _claim(endpoint: str, name: str) -> Iterator[bool]:
    """Yields True when this caller may delete ``name`` now, False when another thread is deleting it."""
    key = (endpoint, name)
    with _IN_FLIGHT_GUARD:
        mine = key not in _IN_FLIGHT
        _IN_FLIGHT.add(key)
    try:
        yield mine
    finally:
        if mine:
            with _IN_FLIGHT_GUARD:
                _IN_FLIGHT.discard(key)


#: Pauses between ListRoles attempts after a 404 (see ``RgwAdminSession.role_names``). Kept short: with no role
#: at all every listing pays them (each 404 itself takes about 50 ms on the sandbox RGW).
_ROLE_LIST_RETRY_S = (0.01, 0.03)


class RgwAdminSession:
    """Admin access to one RGW. Thread-safe; every failure of the service surfaces as IssuerError."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, *, region: str = "default",
                 timeout_s: float = 10.0) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"endpoint {endpoint!r}: expected http://host:port or https://host:port")
        if not access_key or not secret_key:
            raise ValueError("admin access key and secret key must not be empty")
        REDACTOR.add(access_key)  # no access key may reach a report either, the admin's included
        REDACTOR.add(secret_key)
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.timeout_s = timeout_s
        self._access_key = access_key
        self._secret_key = secret_key
        self.rgw = RGWAdmin(access_key=access_key, secret_key=secret_key, server=parts.netloc,
                            secure=parts.scheme == "https", timeout=timeout_s)
        self.s3 = self.client("s3")
        self.iam = self.client("iam")
        self._owner_clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._uid: str | None = None

    @property
    def keys(self) -> tuple[str, str]:
        """The admin (access key, secret key), for building issuers on the same RGW in this process."""
        return self._access_key, self._secret_key

    def client(self, service: str, access_key: str | None = None, secret_key: str | None = None,
               session_token: str | None = None) -> Any:
        """A boto3 client on this RGW; with no keys given, the admin's."""
        return make_client(service, self.endpoint, access_key or self._access_key, secret_key or self._secret_key,
                           session_token, region=self.region, timeout_s=self.timeout_s)

    # --- users ------------------------------------------------------------------------------------------

    @property
    def uid(self) -> str:
        """The admin user's own uid (looked up once by access key)."""
        if self._uid is None:
            self._uid = str(self._admin_call("get the admin user", self.rgw.get_user, access_key=self._access_key)["user_id"])
        return self._uid

    def create_user(self, uid: str, display_name: str) -> tuple[str, str]:
        """Create a user that cannot create buckets (``max_buckets=-1``) with one S3 key.

        Returns:
            (access key, secret key); both are registered for redaction.
        """
        user = self._admin_call(f"create user {uid}", self.rgw.create_user, uid=uid, display_name=display_name,
                                generate_key=True, max_buckets=-1)
        key = user["keys"][0]
        REDACTOR.add(key["access_key"])
        REDACTOR.add(key["secret_key"])
        return key["access_key"], key["secret_key"]

    def user_keys(self, uid: str) -> tuple[str, str] | None:
        """The first S3 key of ``uid`` (both halves registered for redaction), or None when the user does not exist."""
        try:
            user = self.rgw.get_user(uid=uid)
        except NoSuchUser:
            return None
        except (RGWAdminException, requests.RequestException) as e:
            raise IssuerError(f"{self.endpoint}: get user {uid}: {redact(str(e))}") from None
        keys = user.get("keys") or []
        if not keys:
            return None
        REDACTOR.add(keys[0]["access_key"])
        REDACTOR.add(keys[0]["secret_key"])
        return keys[0]["access_key"], keys[0]["secret_key"]

    def ensure_user(self, uid: str, display_name: str) -> tuple[str, str]:
        """The keys of ``uid``, creating the user (no buckets allowed) when it does not exist."""
        keys = self.user_keys(uid)
        if keys is not None:
            return keys
        try:
            return self.create_user(uid, display_name)
        except IssuerError as e:
            if isinstance(e.__cause__, UserAlreadyExists) or "UserAlreadyExists" in str(e):
                found = self.user_keys(uid)
                if found is not None:
                    return found
            raise

    def user_display_name(self, uid: str) -> str | None:
        try:
            return str(self.rgw.get_user(uid=uid).get("display_name", ""))
        except NoSuchUser:
            return None
        except (RGWAdminException, requests.RequestException) as e:
            raise IssuerError(f"{self.endpoint}: get user {uid}: {redact(str(e))}") from None

    def delete_user(self, uid: str) -> bool:
        """Delete ``uid`` with its keys and inline policies.

        Returns:
            False when it was already gone or another thread of this process is deleting it.
        """
        with _claim(self.endpoint, "user:" + uid) as mine:
            if not mine:
                return False
            try:
                self.rgw.remove_user(uid=uid, purge_data=True)
            except NoSuchUser:
                return False
            except (RGWAdminException, requests.RequestException) as e:
                raise IssuerError(f"{self.endpoint}: delete user {uid}: {redact(str(e))}") from None
            return True

    def user_ids(self) -> Iterator[str]:
        """Every user id on this RGW (paged through the metadata API; needs the ``metadata`` cap)."""
        marker: str | None = None
        while True:
            page = self._admin_call("list users", self.rgw.get_metadata, "user", max_entries=1000, marker=marker)
            if isinstance(page, list):  # older RGWs answer a plain list
                yield from page
                return
            yield from page.get("keys", [])
            if str(page.get("truncated", "false")).lower() != "true" or not page.get("marker"):
                return
            marker = page["marker"]

    def put_user_policy(self, uid: str, name: str, doc: dict[str, Any]) -> None:
        self._iam_call(f"put user policy on {uid}", self.iam.put_user_policy, UserName=uid, PolicyName=name,
                       PolicyDocument=policy.compact(doc))

    # --- roles ------------------------------------------------------------------------------------------

    def role_names(self) -> list[str]:
        """Every IAM role name.

        RGW 16.2 answers ListRoles with a bare 404 both when there is no role and, under churn, when a role it
        listed was deleted before it read it (measured: 16 of 373 listings during create/delete churn, with five
        roles standing). A 404 is therefore retried, and only three 404s in a row mean "no roles" (under that
        churn, by chance about once in 15,000 listings; churn in a real run is far lighter).

        Raises:
            IssuerError: RGW failed.
        """
        for delay in (*_ROLE_LIST_RETRY_S, None):
            names = self._list_roles_once()
            if names is not None:
                return names
            if delay is not None:
                time.sleep(delay)
        return []

    def _list_roles_once(self) -> list[str] | None:
        """One full listing; None when RGW answered 404."""
        names: list[str] = []
        marker: str | None = None
        for _ in range(10_000):  # pages (RGW 16.2 answers in one; IAM proper pages by 100)
            try:
                resp = self.iam.list_roles(**({"Marker": marker} if marker else {}))
            except AWS_ERRORS as e:
                if answer_of(e).not_found:
                    return None
                raise IssuerError(f"{self.endpoint}: list roles: {answer_of(e)}") from None
            names.extend(r["RoleName"] for r in resp.get("Roles", []))
            marker = resp.get("Marker") if resp.get("IsTruncated") else None
            if not marker:
                break
        return names

    def delete_role(self, name: str) -> bool:
        """Delete a role and its inline policies (a role with policies cannot be deleted).

        Returns:
            False when it was already gone or another thread of this process is deleting it.
        """
        with _claim(self.endpoint, "role:" + name) as mine:
            return mine and self._delete_role(name)

    def _delete_role(self, name: str, attempts: int = 5) -> bool:
        # An issuer may still be attaching the role's policy while a reaper deletes the role: RGW then answers
        # 409 (DeleteConflict, a policy is still attached). Policies are listed and removed again, a bounded
        # number of times; the last conflict is raised.
        for attempt in range(1, attempts + 1):
            try:
                names = self.iam.list_role_policies(RoleName=name).get("PolicyNames", [])
            except AWS_ERRORS as e:
                if answer_of(e).not_found:
                    return False
                raise IssuerError(f"{self.endpoint}: list policies of role {name}: {answer_of(e)}") from None
            for pname in names:
                self._iam_call(f"delete policy {pname} of role {name}", self.iam.delete_role_policy, missing_ok=True,
                               RoleName=name, PolicyName=pname)
            try:
                self.iam.delete_role(RoleName=name)
            except AWS_ERRORS as e:
                answer = answer_of(e)
                if answer.not_found:
                    return False
                if answer.status == 409 and attempt < attempts:
                    time.sleep(0.05 * attempt)
                    continue
                raise IssuerError(f"{self.endpoint}: delete role {name}: {answer}") from None
            return True
        return False  # not reached: the last attempt returns or raises

    # --- buckets ----------------------------------------------------------------------------------------

    def bucket_owner(self, bucket: str) -> str | None:
        """The owner uid of ``bucket``, or None when it does not exist."""
        try:
            info = self.rgw.get_bucket(bucket=bucket)
        except NoSuchBucket:
            return None
        except (RGWAdminException, requests.RequestException) as e:
            raise IssuerError(f"{self.endpoint}: get bucket {bucket}: {redact(str(e))}") from None
        return str(info["owner"])

    def force_remove_bucket(self, bucket: str) -> bool:
        """Remove ``bucket`` when S3 cannot: an RGW killed while it made or deleted the bucket can leave its name
        listed by the owner while every S3 request on it answers NoSuchBucket (instance metadata or index shards
        gone). First the admin API's bucket removal with its objects; when that fails too, the bucket's metadata:
        its entry point (removing it unlinks the bucket from its owner) and its instance.

        Returns:
            True when something was removed; False when RGW has no entry point for the name (nothing is left).
        Raises:
            IssuerError: the admin API refused (the metadata part needs the ``metadata=*`` cap; ``radosgw-admin
                metadata rm bucket:<name>`` does the same by hand) or failed.
        """
        try:
            self.rgw.remove_bucket(bucket=bucket, purge_objects=True)
            return True
        except (NoSuchBucket, NoSuchKey):
            pass
        except (RGWAdminException, requests.RequestException) as e:
            raise IssuerError(f"{self.endpoint}: remove bucket {bucket}: {redact(str(e))}") from None
        key = quote(bucket, safe="")
        what = f"remove the metadata of bucket {bucket} (needs the metadata=* cap)"
        try:
            entry = self.rgw.request("get", f"/admin/metadata/bucket?format=json&key={key}")
            self.rgw.request("delete", f"/admin/metadata/bucket?format=json&key={key}")
        except NoSuchKey:  # no entry point: nothing of the bucket is left to remove
            return False
        except (RGWAdminException, requests.RequestException) as e:
            raise IssuerError(f"{self.endpoint}: {what}: {type(e).__name__} {redact(str(e))}") from None
        bucket_id = ((entry or {}).get("data") or {}).get("bucket", {}).get("bucket_id")
        if bucket_id:
            instance = quote(f"{bucket}:{bucket_id}", safe="")
            try:
                self.rgw.request("delete", f"/admin/metadata/bucket.instance?format=json&key={instance}")
            except NoSuchKey:
                pass
            except (RGWAdminException, requests.RequestException) as e:
                raise IssuerError(f"{self.endpoint}: {what}: {type(e).__name__} {redact(str(e))}") from None
        return True

    def owner_s3(self, bucket: str, owner: str | None = None) -> Any:
        """An S3 client acting as the owner of ``bucket`` (bucket policies can only be set by the owner).

        The admin reads the owner's key through the admin API when the owner is another user. ``owner`` saves
        the lookup when the caller already knows it.
        """
        owner = owner or self.bucket_owner(bucket)
        if owner is None:
            raise IssuerError(f"{self.endpoint}: bucket {bucket} does not exist")
        if owner == self.uid:
            return self.s3
        with self._lock:
            cached = self._owner_clients.get(owner)
        if cached is not None:
            return cached
        keys = self.user_keys(owner)
        if keys is None:
            raise IssuerError(f"{self.endpoint}: the owner {owner} of bucket {bucket} has no S3 key")
        client = self.client("s3", *keys)
        with self._lock:
            self._owner_clients[owner] = client
        return client

    def bucket_policy(self, bucket: str, s3: Any | None = None) -> dict[str, Any] | None:
        """The bucket policy as a dict, or None when the bucket has none."""
        try:
            text = (s3 or self.owner_s3(bucket)).get_bucket_policy(Bucket=bucket)["Policy"]
        except AWS_ERRORS as e:
            if answer_of(e).not_found:
                return None
            raise IssuerError(f"{self.endpoint}: get policy of bucket {bucket}: {answer_of(e)}") from None
        return dict(json.loads(text))

    def update_bucket_policy(
        self, bucket: str, change: Callable[[dict[str, Any] | None], dict[str, Any]],
        applied: Callable[[dict[str, Any] | None], bool], attempts: int = 8, owner: str | None = None,
    ) -> None:
        """Read-modify-write the bucket policy: ``change`` maps the current policy to the new one, ``applied`` says
        whether a policy read back contains our change.

        A per-bucket lock serialises writers in this process; after each write the policy is read back and the
        change redone when another writer (another process) overwrote it in between. Writers in other processes
        can still lose a change made after our read-back: there is no If-Match on PutBucketPolicy.

        Raises:
            IssuerError: the change did not stick after ``attempts`` tries, or RGW refused the policy.
        """
        s3 = self.owner_s3(bucket, owner)
        with _policy_lock(self.endpoint, bucket):
            for attempt in range(attempts):
                current = self.bucket_policy(bucket, s3)
                if applied(current):
                    return
                new = change(current)
                try:
                    if new.get("Statement"):
                        s3.put_bucket_policy(Bucket=bucket, Policy=policy.compact(new))
                    else:
                        s3.delete_bucket_policy(Bucket=bucket)
                except AWS_ERRORS as e:
                    raise IssuerError(f"{self.endpoint}: put policy of bucket {bucket}: {answer_of(e)}") from None
                if applied(self.bucket_policy(bucket, s3)):
                    return
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise IssuerError(f"{self.endpoint}: bucket {bucket}: policy change lost to concurrent writers {attempts} times")

    def ensure_bucket_guard(self, bucket: str, deny_anonymous_reads: bool = True, owner: str | None = None) -> None:
        """Make sure the bucket policy lets the owner read temporary users' objects (and, by default, denies
        anonymous reads). Checked on every call (one GET when present): a bucket may have been recreated."""
        owner = owner or self.bucket_owner(bucket)
        if owner is None:
            raise IssuerError(f"{self.endpoint}: bucket {bucket} does not exist")
        wanted = [policy.owner_access_statement(bucket, owner)]
        if deny_anonymous_reads:
            wanted.append(policy.deny_anonymous_reads_statement(bucket))

        def applied(doc: dict[str, Any] | None) -> bool:
            present = (doc or {}).get("Statement", [])
            return all(w in present for w in wanted)

        self.update_bucket_policy(bucket, lambda doc: policy.with_statements(doc, wanted), applied, owner=owner)

    # --- plumbing ---------------------------------------------------------------------------------------

    def _admin_call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RGWAdminException, requests.RequestException) as e:
            raise IssuerError(f"{self.endpoint}: {what}: {type(e).__name__} {redact(str(e))}") from e

    def _iam_call(self, what: str, fn: Callable[..., Any], missing_ok: bool = False, **kwargs: Any) -> bool:
        try:
            fn(**kwargs)
        except AWS_ERRORS as e:
            answer = answer_of(e)
            if missing_ok and answer.not_found:
                return False
            raise IssuerError(f"{self.endpoint}: {what}: {answer}") from None
        return True
