"""What the HTML page and the Markdown summary both show, computed once: the run's verdict (aggregated from its
findings, never re-judged here), counts, failing findings and rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from clusterproof.findings import Area, Finding, RunVerdict, Status
from clusterproof.report.baseline import BaselineDiff
from clusterproof.report.plots import Plot
from clusterproof.report.tables import RunData
from clusterproof.unfit import UnfitNode, unfit_nodes

STANDIN_BANNER = (
    "CPU stand-in: the bandwidth numbers in this report come from the MPI CPU stand-in for nccl-tests "
    "(the inventory sets standin: true), not from nccl-tests on GPUs. They prove that the suite and its "
    "checks work; they say nothing about a GPU fabric. On the sandbox the "
    "node-health facts (nvidia-smi, the kernel log, PCIe and IB sysfs attributes and counters) come from "
    "stand-ins that replay captured real outputs of other machines."
)
AREAS = tuple(a.value for a in Area)
#: How each status reads on a page.
STATUS_WORD = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.KNOWN_LIMITATION: "known limitation",
               Status.NOT_TESTED: "not tested"}


@dataclass
class PageData:
    """Everything a page shows about one run."""

    data: RunData
    verdict: RunVerdict
    diff: BaselineDiff | None
    plots: list[Plot] = field(default_factory=list)

    @property
    def standin(self) -> bool:
        return self.data.standin

    @property
    def word(self) -> str:
        """``PASS``, ``PASS with known limitations`` or ``FAIL``."""
        if not self.verdict.passed:
            return "FAIL"
        return "PASS with known limitations" if self.verdict.has_known_limitations else "PASS"

    @property
    def unfit(self) -> list[UnfitNode]:
        """The nodes a failing node finding makes unfit, with the reasons (also ``unfit_nodes.txt``)."""
        return unfit_nodes(f for c in self.verdict.criteria for f in c.findings)

    @property
    def failures(self) -> list[Finding]:
        """Every failing finding, criterion by criterion."""
        return [f for c in self.verdict.failing() for f in c.failures]

    def counts(self) -> dict[Status, int]:
        """Criteria per status."""
        return {s: sum(c.status is s for c in self.verdict.criteria) for s in Status}

    def counts_line(self) -> str:
        """``32 criteria: 8 pass, 2 fail, 1 known limitation, 21 not tested; 27 failing findings``."""
        c = self.counts()
        line = (f"{len(self.verdict.criteria)} criteria: {c[Status.PASS]} pass, {c[Status.FAIL]} fail, "
                f"{c[Status.KNOWN_LIMITATION]} known limitation, {c[Status.NOT_TESTED]} not tested")
        n = len(self.failures)
        if n:
            line += f"; {n} failing finding{'s' if n != 1 else ''}"
        known = sum(f.status is Status.KNOWN_LIMITATION for c in self.verdict.criteria for f in c.findings)
        if known:  # a passing criterion can hold some: "PASS with known limitations" says so, and so must this line
            line += f"; {known} finding{'s are' if known != 1 else ' is a'} known limitation{'s' if known != 1 else ''}"
        return line

    def failed_network(self) -> pd.DataFrame:
        net = self.data.network
        return net[net["verdict"] == "fail"]

    def failed_storage(self) -> pd.DataFrame:
        st = self.data.storage
        return st[st["verdict"] == "fail"]

    def large_message_rows(self) -> pd.DataFrame:
        """Per collective and node set (and launcher, when a run used more than one), out-of-place, the row at the
        largest size, widest sets first."""
        net = self.data.network.dropna(subset=["size_bytes", "busbw_gbs"])
        if net.empty:
            return net
        placement = "out-of-place" if (net["placement"] == "out-of-place").any() else net["placement"].iloc[0]
        net = net[net["placement"] == placement]
        keys = ["collective", "node_set"] + (["launcher"] if "launcher" in net and net["launcher"].nunique() > 1 else [])
        idx = net.groupby(keys, dropna=False)["size_bytes"].idxmax()
        rows = net.loc[idx.to_numpy()]
        return rows.sort_values(["collective", "n_nodes", "busbw_gbs"], ascending=[True, False, True])
