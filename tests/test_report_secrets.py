"""No secret reaches a report: plant registered secrets, an unregistered ``AWS_SECRET_ACCESS_KEY=...`` and
environment dumps in tables, metadata, test messages and logs, build the report, then read every byte."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pandas as pd

from clusterproof import findings as fd
from clusterproof.findings import Criterion, FindingLog, Status, Subject
from clusterproof.redact import REDACTOR
from clusterproof.report import build, copy_logs
from clusterproof.report.scrub import scrub
from clusterproof.secret_ledger import SecretLedger
from tests.test_report_sample import (
    DATA,
    sample_meta,
    sample_tables,
    sample_transport,
    write_sample,
)

ACCESS_KEY = "AKIAPLANTEDTESTKEY77"
SECRET_KEY = "pl4nted/Secret+Key/0123456789abcdefXYZ"
SESSION_TOKEN = "FwoGZXIvYXdzEPlantedSessionToken0123456789ZZ"
REGISTERED = (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN)
UNREGISTERED = "unregisteredSecretValue987"  # only ever written as AWS_SECRET_ACCESS_KEY=<this>
ENV_MARKER = "envdump-marker-4242"  # a harmless variable that only appears inside environment dumps
CONTROL = "visible-control-cluster"  # must survive: proves the byte scan can see plain strings
FORBIDDEN = (*REGISTERED, UNREGISTERED, ENV_MARKER)

ENV_DUMP = "\n".join([
    "PATH=/usr/local/bin:/usr/bin",
    "HOME=/root",
    "USER=root",
    f"PLANTED_MARKER={ENV_MARKER}",
    f"AWS_ACCESS_KEY_ID={ACCESS_KEY}",
    f"AWS_SECRET_ACCESS_KEY={UNREGISTERED}",
    "NCCL_IB_GID_INDEX=5",
])
ONE_LINE_DUMP = f"PATH=/usr/bin HOME=/root USER=root SHELL=/bin/bash PLANTED_MARKER={ENV_MARKER}"


def _plant(outdir: Path, raw: Path) -> None:
    for value in REGISTERED:
        REDACTOR.add(value)
    tables = sample_tables()
    net = tables["network"]
    net["cluster"] = CONTROL
    net = net.astype({"nccl_version": object, "nccl_tests_version": object})  # empty (float) columns in the CSV
    net.loc[0, "nccl_version"] = f"2.21.5 {SECRET_KEY}"
    net.loc[1, "nccl_tests_version"] = f"AWS_SECRET_ACCESS_KEY={UNREGISTERED}"
    net["test_id"] = net["test_id"].astype(str)
    net.loc[2, "test_id"] = str(net["test_id"].iloc[2]) + " " + ONE_LINE_DUMP
    st = tables["storage"]
    st.loc[0, "detail"] = f"403 AccessDenied x-amz-security-token: {SESSION_TOKEN}"
    st.loc[1, "detail"] = ONE_LINE_DUMP
    st.loc[2, "detail"] = ENV_DUMP  # a multi-line cell
    st.loc[3, "verdict"] = "fail"  # so storage details show up among the failures too
    st.loc[3, "detail"] = f"AWS_SECRET_ACCESS_KEY={UNREGISTERED}"
    nodes = tables["nodes"]
    nodes.loc[0, "kernel"] = f"6.18.0 {ACCESS_KEY}"
    transport = sample_transport()
    transport.loc[3, "devices"] = f"AWS_SECRET_ACCESS_KEY={UNREGISTERED}"
    meta = sample_meta(
        cluster=CONTROL,
        pytest_args=["suites", f"--s3-secret={SECRET_KEY}", "-k", ACCESS_KEY],
        versions={"nccl": "2.21.5", "leak": SESSION_TOKEN},
        extra={"nccl_env": {"AWS_SESSION_TOKEN": "stillUnregisteredToken55", "NCCL_DEBUG": "INFO"}},
    )
    write_sample(outdir, meta=meta, network=net, storage=st, nodes=nodes, transport=transport)
    # Findings whose messages quote a failure with secrets in it, recorded as the suites record them.
    FindingLog(outdir, "gw0", clean=scrub).append([
        fd.failed(Criterion.COLLECTIVES, Subject("node_set", "node1,node2"),
                  f"mpirun failed; environment follows:\n{ENV_DUMP}\nsecret was {SECRET_KEY}"),
        fd.failed(Criterion.NODES_REACHABLE, Subject("node", "node1"), f"aws_secret_access_key = {UNREGISTERED}"),
    ])
    raw.mkdir()
    log = raw / "all_reduce-4n.log"
    log.write_text(
        f"+ export AWS_SECRET_ACCESS_KEY={UNREGISTERED}\n+ env\n{ENV_DUMP}\n"
        + (DATA / "all_reduce-4n.log").read_text()
        + f"# credentials {ACCESS_KEY} {SECRET_KEY}\n"
    )
    (raw / "nccl-tests.json").write_text(
        '{"version": 3, "env": ["PATH=/usr/bin", "HOME=/root", "USER=root", '
        f'"PLANTED_MARKER={ENV_MARKER}", "AWS_SESSION_TOKEN={SESSION_TOKEN}"], "results": []}}\n'
    )
    copy_logs([log, raw / "nccl-tests.json"], outdir / "logs")


def _every_blob(outdir: Path) -> dict[str, bytes]:
    """Every file's bytes, plus the decoded bytes of every image embedded in the HTML pages."""
    blobs = {p.relative_to(outdir).as_posix(): p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    for name, data in list(blobs.items()):
        if name.endswith(".html"):
            for i, b64 in enumerate(re.findall(rb"data:image/png;base64,([A-Za-z0-9+/=]+)", data)):
                blobs[f"{name}#img{i}"] = base64.b64decode(b64)
    return blobs


def test_planted_secrets_and_env_dumps_appear_nowhere_in_the_report(tmp_path: Path) -> None:
    outdir = tmp_path / "run"
    _plant(outdir, tmp_path / "raw")
    summary = build(outdir)

    blobs = _every_blob(outdir)
    assert {"results.parquet", "results.csv", "storage.csv", "nodes.csv", "transport.csv", "metadata.json",
            "findings/gw0.jsonl", "index.html", "summary.md", "scorecard.json", "logs/all_reduce-4n.log",
            "logs/nccl-tests.json"} <= set(blobs)
    assert sum(1 for n in blobs if "#img" in n) == len(summary.plots) == 3
    leaks = [
        f"{name} holds {value[:6]}…"
        for name, data in blobs.items()
        for value in FORBIDDEN
        for form in (value.encode(), base64.b64encode(value.encode()))
        if form in data
    ]
    assert leaks == []
    # The scan is not blind: a harmless planted value is visible in the same bytes.
    assert CONTROL.encode() in blobs["results.parquet"] and CONTROL.encode() in blobs["index.html"]
    # Cell by cell too, whatever the parquet encoding.
    cells = [str(v) for v in pd.read_parquet(outdir / "results.parquet").to_numpy().ravel()]
    assert not [c for c in cells if any(v in c for v in FORBIDDEN)]
    assert any(CONTROL in c for c in cells)
    # What was removed says so, and the useful part of the log stayed.
    log = (outdir / "logs" / "all_reduce-4n.log").read_text()
    assert "[environment dump removed: 7 variables]" in log and "# Out of bounds values : 0 OK" in log
    assert "[environment dump removed: 5 variables]" in (outdir / "logs" / "nccl-tests.json").read_text()
    card = summary.verdict.of(Criterion.NO_SECRETS)
    assert card.status is Status.PASS, card.failures
    text_files = [p for p in outdir.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert card.headline.startswith("1 check passed on run")
    assert card.findings[0].message.startswith(f"scanned {len(text_files)} files (")


def test_a_leak_written_by_someone_else_fails_the_security_criterion(tmp_path: Path) -> None:
    outdir = write_sample(tmp_path / "run")
    REDACTOR.add(SECRET_KEY)
    # Files the report did not write itself (pytest's JUnit XML, a log copied without copy_logs).
    (outdir / "junit.xml").write_text(
        '<?xml version="1.0"?>\n<testcase name="t"><failure message="AWS_SECRET_ACCESS_KEY=leakedValue12345"/></testcase>\n'
    )
    (outdir / "logs").mkdir()
    (outdir / "logs" / "raw.log").write_text(f"ok\nkey {SECRET_KEY}\n")
    summary = build(outdir)
    card = summary.verdict.of(Criterion.NO_SECRETS)
    assert card.status is Status.FAIL
    assert [f.message for f in card.failures] == ["junit.xml: secret-looking text at line 2", "logs/raw.log: secret-looking text at line 2"]
    assert summary.word == "fail"
    for page in (summary.html_path, summary.md_path):
        text = page.read_text()
        assert "junit.xml: secret-looking text at line 2" in text
        assert "leakedValue12345" not in text and SECRET_KEY not in text


def test_env_dump_removal_keeps_ordinary_settings() -> None:
    from clusterproof.report.scrub import remove_env_dumps

    command = "mpirun -x NCCL_IB_GID_INDEX=5 -x NCCL_DEBUG=INFO -mca pml ob1 ./all_reduce_perf -b 1M"
    settings = "NCCL_IB_HCA=mlx5_0\nNCCL_SOCKET_IFNAME=eth0\n"
    assert remove_env_dumps(command) == command
    assert remove_env_dumps(settings) == settings  # two lines of settings are not a dump
    assert remove_env_dumps(f"before\n{ENV_DUMP}\nafter") == "before\n[environment dump removed: 7 variables]\nafter"
    assert remove_env_dumps(ONE_LINE_DUMP) == "[environment dump removed: 5 variables]"


def test_the_last_pass_over_a_page_masks_leftovers_without_breaking_markup() -> None:
    from clusterproof.redact import MASK
    from clusterproof.report.scrub import redact_page

    REDACTOR.add(SESSION_TOKEN)
    image = "data:image/png;base64,iVBORw0KGgoTOKEN=="  # base64 that happens to look like an assignment
    page = f'<td>AWS_SECRET_ACCESS_KEY={MASK}</td><td>{SESSION_TOKEN}</td><img src="{image}"><td>password: hunter22x'
    assert redact_page(page) == (
        f'<td>AWS_SECRET_ACCESS_KEY={MASK}</td><td>{MASK}</td><img src="{image}"><td>password: {MASK}'
    )


def test_keyword_arguments_in_a_traceback_are_not_an_environment_dump() -> None:
    from clusterproof.report.scrub import remove_env_dumps

    traceback = "\n".join(
        f"            {name}={value}," for name, value in
        [("collective", "spec.collective"), ("n_nodes", "spec.n_nodes"), ("rc", "res.rc"), ("complete", "True"), ("nranks", "4"), ("errors", "[]")]
    )
    assert remove_env_dumps(traceback) == traceback
    dump = "\n".join(f"{k}=v{i}" for i, k in enumerate(["PATH", "HOME", "USER", "SHELL", "AWS_REGION", "lower_one"]))
    assert remove_env_dumps(dump) == "[environment dump removed: 6 variables]"


def test_junit_xml_is_scrubbed_in_place_and_stays_valid(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from clusterproof.redact import REDACTOR
    from clusterproof.report.scrub import scrub_xml_file

    REDACTOR.add("planted-junit-secret-123")
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest"><testcase name="t">'
        '<failure message="AWS_SECRET_ACCESS_KEY=&quot;wJalrXUtnFEMI&quot; leaked">key planted-junit-secret-123 in '
        "output CP_CREDENTIALS_TOKEN=abc.def</failure></testcase></testsuite></testsuites>"
    )
    assert scrub_xml_file(junit)
    text = junit.read_text()
    for secret in ("planted-junit-secret-123", "wJalrXUtnFEMI", "abc.def"):
        assert secret not in text
    failure = ET.parse(junit).find(".//failure")
    assert failure is not None and failure.text is not None and "in output" in failure.text
    assert not scrub_xml_file(junit)  # nothing left to change


def test_a_minted_secret_no_process_registered_is_found_under_report_build(tmp_path: Path) -> None:
    """The secret was minted in another process (an xdist worker): only its salted fingerprint is in the run
    directory, nothing is registered here, and a raw copy sits in a log. The rebuild still finds it."""
    outdir = write_sample(tmp_path / "run")
    minted = "wJalrXUtnFEMIK7MDENGbPxRfiCYmintedKEY42"  # an S3 secret key shape, never registered in this process
    SecretLedger(outdir, "gw1").add(minted)
    ledger = (outdir / ".secret-fingerprints").read_bytes() if (outdir / ".secret-fingerprints").is_file() else b""
    assert minted.encode() not in ledger and all(minted.encode() not in p.read_bytes()
                                                 for p in (outdir / ".secret-fingerprints").iterdir())
    (outdir / "logs").mkdir()
    (outdir / "logs" / "raw.log").write_text(f"upload ok\nkey={minted}&x=1 sent\n")
    (outdir / "logs" / "other.log").write_text(f"glued:{minted}\n")
    summary = build(outdir)
    card = summary.verdict.of(Criterion.NO_SECRETS)
    assert card.status is Status.FAIL and summary.word == "fail"
    assert [f.message for f in card.failures] == [
        "logs/other.log: secret-looking text at line 1 (a secret this run minted)",
        "logs/raw.log: secret-looking text at line 2 (a secret this run minted)",
    ]
    (outdir / "logs" / "raw.log").write_text("upload ok\n")
    (outdir / "logs" / "other.log").write_text("fine\n")
    again = build(outdir)
    assert again.verdict.of(Criterion.NO_SECRETS).status is Status.PASS
    assert "(1 fingerprinted)" in again.verdict.of(Criterion.NO_SECRETS).findings[0].message
