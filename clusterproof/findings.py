"""One judgement for a run: every check returns :class:`Finding` records, and the report, the scorecard, the
JUnit XML and the exit status all aggregate the same records. Nothing downstream re-judges.

A finding says which ClusterMAX-style :class:`Criterion` it is evidence for, its :class:`Status` (pass, fail,
known limitation, not tested, the last two with a reason), the :class:`Subject` it is about (a node, an HCA
port, a rank, a node pair, an issuer...), a message a person reads, and the :class:`Evidence` it rests on (the
raw log path and the lines quoted from it).

Aggregation (:func:`judge`): a criterion fails when any of its findings fails; it passes when at least one
finding passes and none fails (known limitations are shown beside it); it is a known limitation when it has only
known limitations; otherwise it is not tested. The run fails when any criterion fails. Pure: no I/O except
:class:`FindingLog`, which appends JSON lines to one file per process so xdist workers never share a file.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from clusterproof.redact import redact


class Area(StrEnum):
    """ClusterMAX v2 areas, in the order the scorecard shows them."""

    NETWORKING = "Networking"
    STORAGE = "Storage"
    RELIABILITY = "Reliability"
    SECURITY = "Security"


class Criterion(StrEnum):
    """A scorecard line. The value is the stable id kept in ``scorecard.json`` and ``findings.jsonl``."""

    # Networking
    COLLECTIVES = "networking.collectives"
    FOUR_NODE = "networking.four_node"
    NODE_COLLECTIVES = "networking.node_collectives"
    RAILS = "networking.rails"
    GID_INDEX = "networking.gid_index"
    TRANSPORT = "networking.transport"
    BASELINE = "networking.baseline"
    REFERENCE = "networking.reference"
    LINE_RATE = "networking.line_rate"
    BAD_NODE = "networking.bad_node"
    # Storage
    STORAGE_PREFLIGHT = "storage.preflight"
    ACCESS_MATRIX = "storage.access_matrix"
    EXPIRY = "storage.expiry"
    DATA_PATH = "storage.data_path"
    CREDENTIAL_RESILIENCE = "storage.credential_resilience"
    STORAGE_CLEANUP = "storage.cleanup"
    # Reliability (health checks)
    NODES_REACHABLE = "reliability.nodes_reachable"
    NODE_FACTS = "reliability.node_facts"
    CLOCKS = "reliability.clocks"
    GPU_HEALTH = "reliability.gpu_health"
    XID = "reliability.xid"
    PCIE = "reliability.pcie"
    IB_PORTS = "reliability.ib_ports"
    NCCL_CONFIG = "reliability.nccl_config"
    SLURM = "reliability.slurm"
    DATA_INTEGRITY = "reliability.data_integrity"
    SOAK = "reliability.soak"
    REMOTE_CLEANUP = "reliability.remote_cleanup"
    TEST_ERRORS = "reliability.test_errors"
    # Security
    NO_SECRETS = "security.no_secrets"
    PREFIX_CONFINEMENT = "security.prefix_confinement"
    STRICT_HOST_KEYS = "security.strict_host_keys"

    @property
    def area(self) -> Area:
        return Area[_AREA_OF_PREFIX[self.value.split(".", 1)[0]]]

    @property
    def heading(self) -> str:
        return TITLES[self]


_AREA_OF_PREFIX = {"networking": "NETWORKING", "storage": "STORAGE", "reliability": "RELIABILITY", "security": "SECURITY"}

TITLES: dict[Criterion, str] = {
    Criterion.COLLECTIVES: "Collectives meet their bus-bandwidth thresholds at every size",
    Criterion.FOUR_NODE: "4-node NCCL test within specification",
    Criterion.NODE_COLLECTIVES: "Single-node and IB-only collectives per node",
    Criterion.RAILS: "Every rail meets its threshold",
    Criterion.GID_INDEX: "One RoCE v2 GID index on every node",
    Criterion.TRANSPORT: "NCCL used the expected transport on every rank",
    Criterion.BASELINE: "No bus-bandwidth regression against the baseline",
    Criterion.REFERENCE: "Bus bandwidth within its reference band",
    Criterion.LINE_RATE: "Bus bandwidth as a fraction of line rate",
    Criterion.BAD_NODE: "Bad node or link localised",
    Criterion.STORAGE_PREFLIGHT: "Storage endpoint, keys and admin API answer",
    Criterion.ACCESS_MATRIX: "Prefix-scoped access matrix as expected",
    Criterion.EXPIRY: "Expired and revoked credentials are denied",
    Criterion.DATA_PATH: "Data path through temporary credentials",
    Criterion.CREDENTIAL_RESILIENCE: "Credential API survives change and races",
    Criterion.STORAGE_CLEANUP: "No temporary user, key, role or bucket left behind",
    Criterion.NODES_REACHABLE: "Every node reachable over SSH",
    Criterion.NODE_FACTS: "Node facts consistent (hostnames, binaries, versions)",
    Criterion.CLOCKS: "Clocks within the allowed skew",
    Criterion.GPU_HEALTH: "GPUs present and healthy (count, model, ECC, persistence)",
    Criterion.XID: "No fatal XID in the kernel log",
    Criterion.PCIE: "PCIe links at full speed and width",
    Criterion.IB_PORTS: "IB/RoCE ports active, at rate, error counters quiet",
    Criterion.NCCL_CONFIG: "No forced NCCL setting that changes results",
    Criterion.SLURM: "Slurm nodes up, partition and GRES as expected",
    Criterion.DATA_INTEGRITY: "Collectives return correct data (#wrong == 0)",
    Criterion.SOAK: "Soak: no wrong result or slowdown over time",
    Criterion.REMOTE_CLEANUP: "Nothing left behind on the nodes",
    Criterion.TEST_ERRORS: "Every suite test ran to its verdict (no error outside a check)",
    Criterion.NO_SECRETS: "No secret in the report",
    Criterion.PREFIX_CONFINEMENT: "Credentials cannot escape their prefix",
    Criterion.STRICT_HOST_KEYS: "SSH host keys checked strictly",
}


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    KNOWN_LIMITATION = "known limitation"
    NOT_TESTED = "not tested"


@dataclass(frozen=True)
class Subject:
    """What a finding is about: ``kind`` is node, hca_port, gpu, rank, pair, node_set, rail, issuer, bucket, run...;
    ``name`` is what a person selects on (``node07``, ``node07/mlx5_1:1``, ``node01,node03``, ``sts``).

    ``node`` is the one node the subject belongs to (``node07`` for ``node07/mlx5_1:1``; set automatically for
    kind ``node``); a failing finding with a node is what makes that node unfit (:mod:`clusterproof.unfit`).
    A pair or a set of nodes has no single node: name the bad one in a finding of its own.
    """

    kind: str
    name: str
    node: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "node" and self.node is None:
            object.__setattr__(self, "node", self.name)

    def __str__(self) -> str:
        return self.name


def node_subject(node: str) -> Subject:
    return Subject("node", node)


RUN = Subject("run", "run")


@dataclass(frozen=True)
class Evidence:
    """Where a finding comes from: ``path`` is the raw log or output (relative to the run directory when it is
    kept there), ``lines`` the lines quoted from it (already free of secrets)."""

    path: str | None = None
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One judgement about one subject for one criterion.

    ``reason`` is required for not tested and known limitation. ``values`` holds the measured and expected
    numbers when there are any (``{"busbw_gbs": 351.2, "threshold_gbs": 360.0}``), so a report can say where each
    number came from. ``test_id`` is set when a suite records the finding.
    """

    criterion: Criterion
    status: Status
    subject: Subject
    message: str
    evidence: tuple[Evidence, ...] = ()
    reason: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    test_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.criterion, Criterion):
            raise TypeError(f"criterion must be a Criterion, got {self.criterion!r}")
        if not isinstance(self.status, Status):
            raise TypeError(f"status must be a Status, got {self.status!r}")
        if self.status in (Status.NOT_TESTED, Status.KNOWN_LIMITATION) and not self.reason:
            raise ValueError(f"a {self.status} finding needs a reason ({self.criterion}: {self.message})")

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    @property
    def line(self) -> str:
        """``<subject>: <message>`` (just the message when it already starts with the subject's name)."""
        return self.message if self.message.startswith(self.subject.name) else f"{self.subject}: {self.message}"

    def with_test_id(self, test_id: str) -> Finding:
        return replace(self, test_id=test_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion.value,
            "status": self.status.value,
            "subject": {"kind": self.subject.kind, "name": self.subject.name, "node": self.subject.node},
            "message": self.message,
            "evidence": [{"path": e.path, "lines": list(e.lines)} for e in self.evidence],
            "reason": self.reason,
            "values": dict(self.values),
            "test_id": self.test_id,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Finding:
        """Raises ValueError (naming the field) when ``raw`` is not a finding this version wrote."""
        try:
            return cls(
                criterion=Criterion(raw["criterion"]),
                status=Status(raw["status"]),
                subject=Subject(str(raw["subject"]["kind"]), str(raw["subject"]["name"]), raw["subject"].get("node")),
                message=str(raw["message"]),
                evidence=tuple(Evidence(e.get("path"), tuple(str(x) for x in e.get("lines", ()))) for e in raw.get("evidence", ())),
                reason=raw.get("reason"),
                values=dict(raw.get("values") or {}),
                test_id=raw.get("test_id"),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a finding record: missing or malformed {e}") from None


# ------------------------------------------------------------------------------------------- constructors


def passed(criterion: Criterion, subject: Subject, message: str, *, evidence: Sequence[Evidence] = (),
           values: Mapping[str, Any] | None = None) -> Finding:
    return Finding(criterion, Status.PASS, subject, message, tuple(evidence), values=dict(values or {}))


def failed(criterion: Criterion, subject: Subject, message: str, *, evidence: Sequence[Evidence] = (),
           values: Mapping[str, Any] | None = None) -> Finding:
    return Finding(criterion, Status.FAIL, subject, message, tuple(evidence), values=dict(values or {}))


def not_tested(criterion: Criterion, subject: Subject, reason: str, *, message: str | None = None,
               evidence: Sequence[Evidence] = ()) -> Finding:
    return Finding(criterion, Status.NOT_TESTED, subject, message or reason, tuple(evidence), reason=reason)


def known_limitation(criterion: Criterion, subject: Subject, message: str, reason: str, *,
                     evidence: Sequence[Evidence] = ()) -> Finding:
    return Finding(criterion, Status.KNOWN_LIMITATION, subject, message, tuple(evidence), reason=reason)


# ------------------------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class CriterionVerdict:
    """One scorecard line: the criterion, its aggregated status, the line that decided it and every finding."""

    criterion: Criterion
    status: Status
    headline: str
    findings: tuple[Finding, ...]

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.status is Status.FAIL)


@dataclass(frozen=True)
class RunVerdict:
    """The run's one judgement: ``passed`` is what the exit status, the report and ``scorecard.json`` say."""

    criteria: tuple[CriterionVerdict, ...]

    @property
    def passed(self) -> bool:
        return not any(c.status is Status.FAIL for c in self.criteria)

    @property
    def word(self) -> str:
        """``pass`` or ``fail``: the top-level ``verdict`` of ``scorecard.json``."""
        return "pass" if self.passed else "fail"

    @property
    def has_known_limitations(self) -> bool:
        return any(f.status is Status.KNOWN_LIMITATION for c in self.criteria for f in c.findings)

    def of(self, criterion: Criterion) -> CriterionVerdict:
        return next(c for c in self.criteria if c.criterion is criterion)

    def failing(self) -> tuple[CriterionVerdict, ...]:
        return tuple(c for c in self.criteria if c.status is Status.FAIL)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def judge_criterion(criterion: Criterion, findings: Sequence[Finding]) -> CriterionVerdict:
    """Aggregate the findings of one criterion (see the module docstring for the rule)."""
    mine = tuple(f for f in findings if f.criterion is criterion)
    fails = [f for f in mine if f.status is Status.FAIL]
    passes = [f for f in mine if f.status is Status.PASS]
    known = [f for f in mine if f.status is Status.KNOWN_LIMITATION]
    untested = [f for f in mine if f.status is Status.NOT_TESTED]
    known_note = f"; {_plural(len(known), 'known limitation')}: {known[0].message}" if known else ""
    if fails:
        more = f" (and {len(fails) - 1} more)" if len(fails) > 1 else ""
        return CriterionVerdict(criterion, Status.FAIL, f"{fails[0].subject}: {fails[0].message}{more}{known_note}", mine)
    if passes:
        subjects = sorted({str(f.subject) for f in passes})
        head = f"{_plural(len(passes), 'check')} passed on {', '.join(subjects[:6])}{' …' if len(subjects) > 6 else ''}"
        untested_note = f"; {len(untested)} not tested ({untested[0].reason})" if untested else ""
        return CriterionVerdict(criterion, Status.PASS, head + untested_note + known_note, mine)
    if known:
        return CriterionVerdict(criterion, Status.KNOWN_LIMITATION, f"{known[0].message} ({known[0].reason})", mine)
    reason = untested[0].reason if untested else "no check recorded a finding for it in this run"
    return CriterionVerdict(criterion, Status.NOT_TESTED, str(reason), mine)


def judge(findings: Iterable[Finding]) -> RunVerdict:
    """Aggregate every finding of a run into one verdict per criterion (all criteria, in scorecard order)."""
    every = list(findings)
    return RunVerdict(tuple(judge_criterion(c, every) for c in Criterion))


# ------------------------------------------------------------------------------------------- the log


FINDINGS_DIR = "findings"


def _cleaned(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: _cleaned(v, clean) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v, clean) for v in value]
    return value


def _line(finding: Finding, clean: Callable[[str], str]) -> str:
    """One JSON line, every string cleaned of secrets before encoding (a message may quote an error that carried a
    key, or a whole environment dump over several lines)."""
    return json.dumps(_cleaned(finding.to_dict(), clean), sort_keys=True, default=str)


class FindingLog:
    """Appends findings as JSON lines to ``<run_dir>/findings/<process>.jsonl`` (one file per process, so xdist
    workers never write the same file); :func:`read_findings` reads them all back. Thread-safe."""

    def __init__(self, run_dir: Path, process: str = "main", clean: Callable[[str], str] = redact) -> None:
        """``clean`` masks secrets in each JSON line before it is written (the suites pass the report scrubber,
        which also removes environment dumps; the default masks registered secrets and secret-looking
        assignments)."""
        self.clean = clean
        self.dir = Path(run_dir) / FINDINGS_DIR
        self.path = self.dir / f"{process}.jsonl"
        self._lock = threading.Lock()

    def append(self, findings: Iterable[Finding]) -> None:
        lines = [_line(f, self.clean) for f in findings]
        if not lines:
            return
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())


    def replace(self, findings: Iterable[Finding]) -> None:
        """Make this process's file hold exactly ``findings`` (atomically): for run-level findings that a rebuild
        computes again (the secret scan, the baseline), so that rebuilding never piles up copies."""
        lines = [_line(f, self.clean) for f in findings]
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            tmp.replace(self.path)


class FindingsFileError(ValueError):
    """A findings file that this version cannot read (names the file and line)."""


def read_findings(run_dir: Path) -> list[Finding]:
    """Every finding recorded under ``<run_dir>/findings/`` (file order, then line order).

    Raises:
        FindingsFileError: a line is not a finding record (names the file and line number). A last line cut off
            by a killed process is skipped, since every complete line was flushed before it.
    """
    out: list[Finding] = []
    folder = Path(run_dir) / FINDINGS_DIR
    for path in sorted(folder.glob("*.jsonl")):  # a missing folder globs to nothing
        lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(Finding.from_dict(json.loads(line)))
            except (ValueError, json.JSONDecodeError) as e:
                if no == len(lines) and not line.endswith("}"):
                    continue  # torn last line of a killed writer
                raise FindingsFileError(f"{path}:{no}: {e}") from None
    return out
