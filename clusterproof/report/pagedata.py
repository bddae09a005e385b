"""What the HTML page and the Markdown summary both show, computed once: verdict, counts, failing rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from clusterproof.report.baseline import BaselineDiff
from clusterproof.report.plots import Plot
from clusterproof.report.scorecard import FAIL, NOT_TESTED, PASS, Criterion
from clusterproof.report.tables import RunData

STANDIN_BANNER = (
    "CPU stand-in: the bandwidth numbers in this report come from the sandbox's MPI CPU stand-in over "
    "virtual Ethernet, not from nccl-tests on GPUs. They prove that the suite and its checks work; they "
    "say nothing about a GPU fabric. The node-health facts (nvidia-smi, the kernel log, PCIe and IB sysfs "
    "attributes and counters) come from stand-ins that replay captured real outputs of other machines."
)


@dataclass
class PageData:
    """Everything a page shows about one run."""

    data: RunData
    verdict: str  # "pass" | "fail"
    scorecard: list[Criterion]
    failures: list[str]
    diff: BaselineDiff | None
    plots: list[Plot] = field(default_factory=list)

    @property
    def standin(self) -> bool:
        return self.data.standin

    def counts(self) -> dict[str, int]:
        """Criteria per status."""
        return {s: sum(c.status == s for c in self.scorecard) for s in (PASS, FAIL, NOT_TESTED)}

    def counts_line(self) -> str:
        """``13 criteria: 8 pass, 2 fail, 3 not tested; 27 failing cases``."""
        c = self.counts()
        line = f"{len(self.scorecard)} criteria: {c[PASS]} pass, {c[FAIL]} fail, {c[NOT_TESTED]} not tested"
        if self.failures:
            line += f"; {len(self.failures)} failing case{'s' if len(self.failures) != 1 else ''}"
        return line

    def failed_checks(self) -> list[dict[str, object]]:
        return [c for c in self.data.checks if c.get("outcome") in ("failed", "error")]

    def failed_network(self) -> pd.DataFrame:
        net = self.data.network
        return net[net["verdict"] == "fail"]

    def failed_storage(self) -> pd.DataFrame:
        st = self.data.storage
        return st[st["verdict"] == "fail"]

    def large_message_rows(self) -> pd.DataFrame:
        """Per collective and node set, out-of-place, the row at the largest size, widest sets first."""
        net = self.data.network.dropna(subset=["size_bytes", "busbw_gbs"])
        if net.empty:
            return net
        placement = "out-of-place" if (net["placement"] == "out-of-place").any() else net["placement"].iloc[0]
        net = net[net["placement"] == placement]
        idx = net.groupby(["collective", "node_set"])["size_bytes"].idxmax()
        rows = net.loc[idx.to_numpy()]
        return rows.sort_values(["collective", "n_nodes", "busbw_gbs"], ascending=[True, False, True])
