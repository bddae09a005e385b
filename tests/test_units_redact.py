"""Sizes as people write them; secrets masked wherever they appear."""

from __future__ import annotations

import pytest

from clusterproof.redact import MASK, Redactor
from clusterproof.units import human_size, parse_size


@pytest.mark.parametrize(("text", "value"), [("8", 8), ("512K", 512 << 10), ("64M", 64 << 20), ("8G", 8 << 30), ("1GiB", 1 << 30), (4096, 4096), ("2t", 2 << 40)])
def test_parse_size(text: str | int, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "8Q", "-1", "1.5G", True, -4])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "text"), [(8, "8"), (1536, "1536"), (1 << 20, "1M"), (8 << 30, "8G"), (3 << 19, "1536K")])
def test_human_size_round_trips(value: int, text: str) -> None:
    assert human_size(value) == text
    assert parse_size(text) == value


def test_redactor_masks_registered_and_pattern_secrets() -> None:
    r = Redactor(["AKIAREGISTERED123", "short"])
    text = (
        "key AKIAREGISTERED123 in a log; short stays\n"
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG\n"
        "export NCCL_DEBUG=INFO CP_CREDENTIALS_TOKEN='abc.def-ghi'\n"
        '{"aws_session_token": "FwoGZXIvYXdzE"}\n'
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    out = r(text)
    for secret in ("AKIAREGISTERED123", "wJalrXUtnFEMI/K7MDENG", "abc.def-ghi", "FwoGZXIvYXdzE", "b3BlbnNzaC1rZXk"):
        assert secret not in out
    assert "short stays" in out and "NCCL_DEBUG=INFO" in out
    assert out.count(MASK) >= 5


def test_redactor_leaves_harmless_names_and_booleans() -> None:
    text = "StsIssuer(session_policy=False); use_token=True; secret_ref=None; NCCL_IB_GID_INDEX=5"
    assert Redactor()(text) == text
    assert Redactor()("aws_session_token=FwoGZXIvYXdz") == f"aws_session_token={MASK}"
