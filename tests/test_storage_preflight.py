"""The storage preflight without an RGW: missing keys, a port nobody listens on; and what counts as "RGW stopped
answering" (real botocore exceptions) versus a real answer."""

from __future__ import annotations

import socket

from botocore.exceptions import ClientError, EndpointConnectionError

from clusterproof.findings import Criterion, Status
from clusterproof.inventory import StorageSettings
from clusterproof.storage.preflight import is_connection_loss, preflight


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_keys_fail_with_one_line() -> None:
    st = StorageSettings(endpoint="http://127.0.0.1:1", admin_access_key_env="CP_I16_T_NONE_A", admin_secret_key_env="CP_I16_T_NONE_S")
    [f] = preflight(st)
    assert f.status is Status.FAIL and f.criterion is Criterion.STORAGE_PREFLIGHT
    assert f.message == "storage preflight: admin keys not in the environment ($CP_I16_T_NONE_A, $CP_I16_T_NONE_S): no storage test can run"


def test_silent_endpoint_fails_with_one_line() -> None:
    import os

    os.environ["CP_I16_T_A"], os.environ["CP_I16_T_S"] = "a", "b"
    try:
        port = _free_port()
        [f] = preflight(StorageSettings(endpoint=f"http://127.0.0.1:{port}", admin_access_key_env="CP_I16_T_A", admin_secret_key_env="CP_I16_T_S"))
    finally:
        del os.environ["CP_I16_T_A"], os.environ["CP_I16_T_S"]
    assert f.status is Status.FAIL and f.message.startswith(f"storage preflight: RGW at http://127.0.0.1:{port} does not answer (")


def test_connection_loss_is_told_from_an_answer() -> None:
    lost = EndpointConnectionError(endpoint_url="http://127.0.0.1:7480/bucket")
    assert is_connection_loss(lost)
    try:
        try:
            raise lost
        except EndpointConnectionError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert is_connection_loss(wrapped)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
    assert not is_connection_loss(denied) and not is_connection_loss(ValueError("bad prefix"))
