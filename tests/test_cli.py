"""The command line: clear errors for bad input, reports rebuilt from saved data, the sandbox status."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.cli import build_parser, main
from tests.test_report_sample import write_sample


def test_report_build_rebuilds_from_saved_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "20261124T213000Z-a1b2"
    write_sample(run)
    rc = main(["report", "build", str(run)])
    out = capsys.readouterr().out
    assert rc == 1 and "verdict: FAIL" in out  # the sample run has a slow node
    assert (run / "index.html").exists() and (run / "summary.md").exists()


def test_report_on_missing_paths_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "build", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clusterproof: ") and "nope" in err and "Traceback" not in err
    assert main(["report", "history", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no runs under {tmp_path}"


def test_sandbox_status_of_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--state-dir", str(tmp_path / "none"), "status"]) == 0
    assert "down" in capsys.readouterr().out


def test_parser_rejects_unknown_fault() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "fault", "melt", "node01"])


def test_help_names_only_faults_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    from clusterproof.cli import FAULT_KINDS, build_parser

    text = build_parser().format_help()
    assert " clear " not in text and "| clear node03" not in text
    with pytest.raises(SystemExit):
        main(["sandbox", "fault", "-h"])
    fault_help = capsys.readouterr().out
    for kind in FAULT_KINDS:
        assert kind in fault_help
