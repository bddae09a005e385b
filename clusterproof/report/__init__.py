"""Reports: tidy result files, plots, a ClusterMAX-style scorecard, an HTML page, a Markdown summary,
baselines and history.

A run writes its data with ``write_run_data`` / ``copy_logs`` (and the suites record findings) into ``reports/<run-id>/``,
then ``build`` turns that saved data into ``plots/``, ``index.html``, ``summary.md`` and ``scorecard.json``,
and ``update_latest`` points ``reports/latest`` at it. ``history`` draws trends over ``reports/``.
"""

from __future__ import annotations

from clusterproof.report.baseline import BaselineDiff, Regression, compare, load_baseline
from clusterproof.report.builder import ReportSummary, build
from clusterproof.report.meta import RunMeta
from clusterproof.report.paths import new_run_id, run_dirs, update_latest
from clusterproof.report.scrub import scan_dir
from clusterproof.report.tables import RunData, copy_logs, read_run_data, write_run_data
from clusterproof.report.trend import history

__all__ = [
    "BaselineDiff",
    "Regression",
    "ReportSummary",
    "RunData",
    "RunMeta",
    "build",
    "compare",
    "copy_logs",
    "history",
    "load_baseline",
    "new_run_id",
    "read_run_data",
    "run_dirs",
    "scan_dir",
    "update_latest",
    "write_run_data",
]
