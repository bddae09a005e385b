"""The inventory's ``slurm:`` section, and the nodes of the Slurm allocation the run sits in.

``slurm.from_allocation: true`` (or ``pytest --cluster slurm``) takes the node list from ``SLURM_JOB_NODELIST``,
expanded with ClusterShell's hostlist code (``gpu[01-03,07]`` -> gpu01 gpu02 gpu03 gpu07), so a nightly run inside
``salloc -N 16 -p gpu`` needs no hand-written node list. Read by :mod:`clusterproof.inventory`; pure, no I/O besides
the environment mapping it is given.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ClusterShell.NodeSet import NodeSet, NodeSetException

from clusterproof.fields import FieldReader, as_bool, as_int, as_text, one_of

#: A --constraint expression: features joined by & | , and brackets, counts with *N (``h100&ib``, ``[rack1|rack2]``).
_CONSTRAINT_RE = re.compile(r"^[A-Za-z0-9_.\-&|,\[\]*()!]+$")
#: One GRES: name[:type]:count (``gpu:8``, ``gpu:h100:8``).
_GRES_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(?::[A-Za-z0-9_.-]+)?:\d+$")
_SLURM_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
MPI_PLUGINS = ("pmix", "pmi2", "pmix_v4")
KEYS = {"partition", "account", "reservation", "constraints", "gres", "mpi", "srun", "from_allocation", "slots_per_node", "exclude"}


@dataclass(frozen=True)
class SlurmSettings:
    """Where and how the suites use Slurm. ``exclude`` holds node names (from a hostlist) that ``srun --exclude``
    leaves out; ``gres`` is the GRES every node must offer (``gpu:8``); ``constraints`` goes to ``--constraint``."""

    partition: str | None = None
    account: str | None = None
    reservation: str | None = None
    constraints: str | None = None
    gres: str | None = None
    mpi: Literal["pmix", "pmi2", "pmix_v4"] = "pmix"
    srun: str = "srun"
    from_allocation: bool = False
    slots_per_node: int = 1
    exclude: tuple[str, ...] = ()
    job_id: str | None = None  # SLURM_JOB_ID of the allocation the nodes came from

    def srun_options(self) -> list[str]:
        """``-p/-A/--reservation/--constraint/--exclude/--jobid`` options for every srun (only the ones that are set)."""
        out = []
        for flag, value in (("--partition", self.partition), ("--account", self.account),
                            ("--reservation", self.reservation), ("--constraint", self.constraints)):
            if value:
                out.append(f"{flag}={value}")
        if self.exclude:
            out.append(f"--exclude={NodeSet.fromlist(self.exclude)}")
        if self.job_id:  # a step of the allocation the nodes came from, also when srun runs over SSH on the head
            out.append(f"--jobid={self.job_id}")
        return out


def expand_hostlist(text: str) -> list[str]:
    """``gpu[01-02],login1`` -> ``["gpu01", "gpu02", "login1"]`` (ClusterShell). Raises ValueError on bad syntax."""
    try:
        return list(NodeSet(text.strip()))
    except NodeSetException as e:
        raise ValueError(f"not a Slurm hostlist: {text!r} ({e})") from None


def _slurm_name(v: Any, p: str) -> str:
    s = as_text(v, p)
    if not _SLURM_NAME_RE.match(s):
        raise ValueError(f"{s!r} is not a Slurm name (letters, digits, '_', '-', '.')")
    return s


def _pattern(regex: re.Pattern[str], what: str) -> Any:
    def conv(v: Any, p: str) -> str:
        s = as_text(v, p)
        if not regex.match(s):
            raise ValueError(f"{s!r} is not {what}")
        return s

    return conv


def _hostlist(v: Any, p: str) -> tuple[str, ...]:
    if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
        v = ",".join(v)
    return tuple(expand_hostlist(as_text(v, p)))


def read_slurm(r: FieldReader, raw: Any, environ: Mapping[str, str]) -> SlurmSettings | None:
    """Validate the ``slurm:`` section (None when absent); every problem goes to ``r`` with its field path."""
    if raw is None:
        return None
    p = "slurm"
    m = r.mapping(raw, p, KEYS)
    from_alloc = r.get(m, "from_allocation", p, as_bool, False)
    return SlurmSettings(
        partition=r.get(m, "partition", p, _slurm_name, None),
        account=r.get(m, "account", p, _slurm_name, None),
        reservation=r.get(m, "reservation", p, _slurm_name, None),
        constraints=r.get(m, "constraints", p, _pattern(_CONSTRAINT_RE, "a --constraint expression (e.g. h100&ib)"), None),
        gres=r.get(m, "gres", p, _pattern(_GRES_RE, "a GRES like gpu:8 or gpu:h100:8"), None),
        mpi=r.get(m, "mpi", p, one_of(*MPI_PLUGINS), "pmix"),
        srun=r.get(m, "srun", p, as_text, "srun"),
        from_allocation=from_alloc,
        slots_per_node=r.get(m, "slots_per_node", p, as_int(1), 1),
        exclude=r.get(m, "exclude", p, _hostlist, ()),
        job_id=environ.get("SLURM_JOB_ID") if from_alloc else None,
    )


def allocation_nodes(r: FieldReader, environ: Mapping[str, str]) -> list[str]:
    """The allocation's node names from ``SLURM_JOB_NODELIST`` (problems go to ``r`` under ``slurm.from_allocation``)."""
    text = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not text:
        r.problem("slurm.from_allocation", "SLURM_JOB_NODELIST is not set: run inside an allocation "
                                           "(salloc -N 4 -p PARTITION pytest suites --cluster ...)")
        return []
    try:
        return expand_hostlist(text)
    except ValueError as e:
        r.problem("slurm.from_allocation", f"SLURM_JOB_NODELIST: {e}")
        return []


def allocation_inventory_doc(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The inventory ``pytest --cluster slurm`` runs with: nodes from the allocation (reached over SSH by their Slurm
    names, as ``$USER`` with the agent and ``~/.ssh/known_hosts``), collectives through ``srun``, the partition the
    allocation came from."""
    env = os.environ if environ is None else environ
    slurm: dict[str, Any] = {"from_allocation": True}
    if env.get("SLURM_JOB_PARTITION"):
        slurm["partition"] = env["SLURM_JOB_PARTITION"]
    if env.get("SLURM_JOB_ACCOUNT"):
        slurm["account"] = env["SLURM_JOB_ACCOUNT"]
    return {
        "name": f"slurm-{env.get('SLURM_JOB_ID', 'allocation')}",
        "ssh": {"user": env.get("USER") or getpass.getuser(), "known_hosts": os.path.expanduser("~/.ssh/known_hosts")},
        "nccl_tests": {"launcher": "srun"},
        "slurm": slurm,
    }
