"""The cluster file (inventory): YAML in, frozen dataclasses out, validated once.

Every problem in the file is collected and reported together, each naming its field
(``nodes[3].host: missing``); unknown keys are errors so that typos are never silent.
See ``examples/my-cluster.yaml`` for an annotated example.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clusterproof.errors import InventoryError
from clusterproof.fields import (
    ENV_NAME_RE,
    FieldReader,
    as_bool,
    as_env_name,
    as_int,
    as_name,
    as_number,
    as_path,
    as_size,
    as_str_list,
    as_str_map,
    as_text,
    one_of,
)
from clusterproof.inventory_storage import PerformanceSettings, read_command, read_performance
from clusterproof.localize_settings import (
    LocalizeSettings,
    NodeCollectiveSettings,
    RailSettings,
    read_localize,
    read_node_collectives,
    read_rails,
)
from clusterproof.network.reference_config import (
    NetworkChecks,
    ReferenceSettings,
    read_network_checks,
    read_references,
)
from clusterproof.nodes.health_settings import HealthSettings, read_health
from clusterproof.slurm_settings import SlurmSettings, allocation_nodes, read_slurm
from clusterproof.thresholds import COLLECTIVES, Thresholds, read_thresholds

_HCA_RE = re.compile(r"^[A-Za-z0-9_.-]+(?::\d+)?$")
ISSUER_KINDS = ("rgw-user", "sts", "http")


@dataclass(frozen=True)
class JumpHost:
    host: str
    port: int = 22
    user: str | None = None


@dataclass(frozen=True)
class SshSettings:
    user: str = "root"
    key_file: Path | None = None
    use_agent: bool = True
    known_hosts: Path | None = None
    strict_host_keys: bool = True
    jump_host: JumpHost | None = None
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 60.0
    max_parallel: int = 64


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    port: int = 22
    user: str = "root"
    slots: int = 1


@dataclass(frozen=True)
class NetworkSettings:
    hcas: tuple[str, ...] = ()
    netdevs: tuple[str, ...] = ()
    gid_index: int | Literal["auto"] = "auto"
    sysfs_root: str = "/sys"
    max_clock_skew_s: float = 1.0


@dataclass(frozen=True)
class SweepSpec:
    """nccl-tests sweep flags; sizes in bytes."""

    min_bytes: int = 1 << 20
    max_bytes: int = 64 << 20
    step_factor: int = 2
    iters: int = 20
    warmup_iters: int = 5
    gpus_per_rank: int = 1
    check: int = 1

    def sizes(self) -> list[int]:
        """The message sizes the sweep prints, smallest first (nccl-tests' -b/-e/-f rule)."""
        out, size = [], self.min_bytes
        while 0 < size <= self.max_bytes:  # 0 would never grow (validated at load; guarded here too)
            out.append(size)
            if self.step_factor <= 1:
                break
            size *= self.step_factor
        return out


@dataclass(frozen=True)
class NcclTestsSettings:
    bin_dir: str = "/opt/nccl-tests/build"
    launcher: Literal["mpirun", "srun"] = "mpirun"
    mpirun: str = "mpirun"
    collectives: tuple[str, ...] = ("all_reduce",)
    node_counts: tuple[int, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    mca: Mapping[str, str] = field(default_factory=dict)
    sweep: SweepSpec = field(default_factory=SweepSpec)
    timeout_s: float = 900.0
    debug: Literal["off", "on", "strict"] = "on"
    expect_net: str = "IB"
    expect_gdr: bool = True


@dataclass(frozen=True)
class StorageSettings:
    endpoint: str
    region: str = "default"
    issuers: tuple[str, ...] = ("rgw-user",)
    admin_access_key_env: str | None = None
    admin_secret_key_env: str | None = None
    http_base_url: str | None = None
    http_token_env: str | None = None
    max_ttl_s: int = 604800
    #: The endpoint as the cluster nodes reach it (a load balancer's address); None: the same as ``endpoint``.
    node_endpoint: str | None = None
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    #: argv run while the resilience flows run (e.g. a provider's ``kubectl rollout restart ...``); () = none.
    disruption_command: tuple[str, ...] = ()
    disruption_runs: int = 1
    #: argv that restarts the RGW itself during the flows; () = that scenario is not tested.
    rgw_restart_command: tuple[str, ...] = ()
    #: How many rounds each race of ``suites/storage/test_races.py`` runs.
    race_rounds: int = 3
    #: What the storage suite made longer ago than this (by creation date, or by expiry for temporary
    #: credentials) is an earlier run's leftover, and every run removes it at start.
    stale_after_s: int = 21600

    def env_value(self, attr: str) -> str | None:
        """Read the secret held in the environment variable that field ``attr`` names."""
        name = getattr(self, attr)
        return os.environ.get(name) if name else None


@dataclass(frozen=True)
class Inventory:
    name: str
    nodes: tuple[Node, ...]
    ssh: SshSettings
    network: NetworkSettings
    nccl_tests: NcclTestsSettings
    thresholds: Thresholds
    storage: StorageSettings | None
    source: str = "<memory>"
    #: Set by the sandbox: numbers come from the CPU stand-in for nccl-tests, not from GPUs.
    standin: bool = False
    #: Optional KEY=VALUE file (mode 0600) whose values fill unset environment variables, e.g. the S3 admin
    #: keys that ``storage.*_env`` names. The inventory itself never holds a secret.
    env_file: Path | None = None
    #: What a healthy node looks like (``health:``; every default suits an 8-GPU H100/H200 node).
    health: HealthSettings = field(default_factory=HealthSettings)
    localize: LocalizeSettings = field(default_factory=LocalizeSettings)
    node_collectives: NodeCollectiveSettings | None = None
    rails: RailSettings | None = None
    #: Reference files per fabric class (``references:``) and the limits of the shape, outlier, line-rate and
    #: soak checks (``network_checks:``); see :mod:`clusterproof.network.reference_config`.
    references: ReferenceSettings = field(default_factory=ReferenceSettings)
    network_checks: NetworkChecks = field(default_factory=NetworkChecks)
    #: The ``slurm:`` section (partition, account, reservation, constraints, GRES, nodes from the allocation).
    slurm: SlurmSettings | None = None

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"{self.source}: no node named {name!r}")

    def subset(self, names: list[str]) -> Inventory:
        """The same inventory restricted to ``names`` (in inventory order)."""
        wanted = set(names)
        unknown = wanted - {n.name for n in self.nodes}
        if unknown:
            raise KeyError(f"{self.source}: unknown node(s): {', '.join(sorted(unknown))}")
        return _replace(self, nodes=tuple(n for n in self.nodes if n.name in wanted))


def _replace(inv: Inventory, **changes: Any) -> Inventory:
    from dataclasses import replace

    return replace(inv, **changes)


def _read_nodes(r: FieldReader, raw: Any, ssh_user: str) -> tuple[Node, ...]:
    if not isinstance(raw, list) or not raw:
        r.problem("nodes", "expected a non-empty list of nodes")
        return ()
    nodes: list[Node] = []
    seen_names: dict[str, int] = {}
    seen_hosts: dict[tuple[str, int], int] = {}
    for i, item in enumerate(raw):
        p = f"nodes[{i}]"
        m = r.mapping(item, p, {"name", "host", "port", "user", "slots"}, {"name", "host"})
        name = r.get(m, "name", p, as_name, "")
        host = r.get(m, "host", p, as_text, "")
        port = r.get(m, "port", p, as_int(1, 65535), 22)
        node = Node(name=name, host=host, port=port, user=r.get(m, "user", p, as_text, ssh_user), slots=r.get(m, "slots", p, as_int(1), 1))
        if name and name in seen_names:
            r.problem(f"{p}.name", f"duplicate node name {name!r} (also nodes[{seen_names[name]}])")
        if host and (host, port) in seen_hosts:
            r.problem(f"{p}.host", f"duplicate address {host}:{port} (also nodes[{seen_hosts[(host, port)]}])")
        seen_names.setdefault(name, i)
        seen_hosts.setdefault((host, port), i)
        nodes.append(node)
    return tuple(nodes)


def _read_ssh(r: FieldReader, raw: Any) -> SshSettings:
    p = "ssh"
    m = r.mapping(raw, p, {"user", "key_file", "use_agent", "known_hosts", "strict_host_keys", "jump_host", "connect_timeout_s", "command_timeout_s", "max_parallel"})
    jump = None
    if m.get("jump_host") is not None:
        jp = "ssh.jump_host"
        jm = r.mapping(m["jump_host"], jp, {"host", "port", "user"}, {"host"})
        jump = JumpHost(host=r.get(jm, "host", jp, as_text, ""), port=r.get(jm, "port", jp, as_int(1, 65535), 22), user=r.get(jm, "user", jp, as_text, None))
    s = SshSettings(
        user=r.get(m, "user", p, as_text, "root"),
        key_file=r.get(m, "key_file", p, as_path, None),
        use_agent=r.get(m, "use_agent", p, as_bool, True),
        known_hosts=r.get(m, "known_hosts", p, as_path, None),
        strict_host_keys=r.get(m, "strict_host_keys", p, as_bool, True),
        jump_host=jump,
        connect_timeout_s=r.get(m, "connect_timeout_s", p, as_number(0.1), 10.0),
        command_timeout_s=r.get(m, "command_timeout_s", p, as_number(0.1), 60.0),
        max_parallel=r.get(m, "max_parallel", p, as_int(1, 4096), 64),
    )
    if s.key_file is None and not s.use_agent:
        r.problem("ssh.key_file", "missing (and use_agent is false: there is no way to authenticate)")
    if s.strict_host_keys and s.known_hosts is None:
        r.problem("ssh.known_hosts", "missing (strict_host_keys is true, so a known_hosts file is required)")
    return s


def _read_network(r: FieldReader, raw: Any) -> NetworkSettings:
    p = "network"
    m = r.mapping(raw, p, {"hcas", "netdevs", "gid_index", "sysfs_root", "max_clock_skew_s"})

    def gid(v: Any, _p: str) -> int | Literal["auto"]:
        if v == "auto":
            return "auto"
        return as_int(0, 255)(v, _p)

    hcas: tuple[str, ...] = r.get(m, "hcas", p, as_str_list, ())
    for hca in hcas:
        if not _HCA_RE.match(hca):
            r.problem(f"{p}.hcas", f"{hca!r} is not an HCA name (e.g. mlx5_0 or mlx5_0:1; one per list entry)")
    return NetworkSettings(
        hcas=hcas,
        netdevs=r.get(m, "netdevs", p, as_str_list, ()),
        gid_index=r.get(m, "gid_index", p, gid, "auto"),
        sysfs_root=r.get(m, "sysfs_root", p, as_text, "/sys"),
        max_clock_skew_s=r.get(m, "max_clock_skew_s", p, as_number(0.0), 1.0),
    )


def _read_nccl(r: FieldReader, raw: Any) -> NcclTestsSettings:
    p = "nccl_tests"
    m = r.mapping(raw, p, {"bin_dir", "launcher", "mpirun", "collectives", "node_counts", "env", "mca", "sweep", "timeout_s", "debug", "expect_net", "expect_gdr"})
    sp = "nccl_tests.sweep"
    sm = r.mapping(m.get("sweep"), sp, {"min_bytes", "max_bytes", "step_factor", "iters", "warmup_iters", "gpus_per_rank", "check"})
    d = SweepSpec()
    sweep = SweepSpec(
        min_bytes=r.get(sm, "min_bytes", sp, as_size, d.min_bytes),
        max_bytes=r.get(sm, "max_bytes", sp, as_size, d.max_bytes),
        step_factor=r.get(sm, "step_factor", sp, as_int(1), d.step_factor),
        iters=r.get(sm, "iters", sp, as_int(1), d.iters),
        warmup_iters=r.get(sm, "warmup_iters", sp, as_int(0), d.warmup_iters),
        gpus_per_rank=r.get(sm, "gpus_per_rank", sp, as_int(1), d.gpus_per_rank),
        check=r.get(sm, "check", sp, as_int(0), d.check),
    )
    if sweep.min_bytes < 1:
        r.problem(f"{sp}.min_bytes", f"must be at least 1 byte, got {sweep.min_bytes}")
    if sweep.min_bytes > sweep.max_bytes:
        r.problem(f"{sp}.min_bytes", f"larger than max_bytes ({sweep.min_bytes} > {sweep.max_bytes})")
    collectives = r.get(m, "collectives", p, as_str_list, ("all_reduce",))
    for c in collectives:
        if c not in COLLECTIVES:
            r.problem(f"{p}.collectives", f"unknown collective {c!r} (known: {', '.join(COLLECTIVES)})")

    def counts(v: Any, _p: str) -> tuple[int, ...]:
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
            raise ValueError(f"expected a list of node counts (integers >= 1), got {v!r}")
        return tuple(v)

    env: dict[str, str] = r.get(m, "env", p, as_str_map, {})
    launcher = r.get(m, "launcher", p, one_of("mpirun", "srun"), "mpirun")
    for k in env:
        if not ENV_NAME_RE.match(k):
            r.problem(f"{p}.env.{k}", "not an environment variable name")

    return NcclTestsSettings(
        bin_dir=r.get(m, "bin_dir", p, as_text, "/opt/nccl-tests/build"),
        launcher=launcher,  # type: ignore[arg-type]
        mpirun=r.get(m, "mpirun", p, as_text, "mpirun"),
        collectives=collectives,
        node_counts=r.get(m, "node_counts", p, counts, ()),
        env=env,
        mca=r.get(m, "mca", p, as_str_map, {}),
        sweep=sweep,
        timeout_s=r.get(m, "timeout_s", p, as_number(1.0), 900.0),
        debug=r.get(m, "debug", p, one_of("off", "on", "strict"), "on"),
        expect_net=r.get(m, "expect_net", p, as_text, "IB"),
        expect_gdr=r.get(m, "expect_gdr", p, as_bool, True),
    )


def _read_storage(r: FieldReader, raw: Any) -> StorageSettings | None:
    if raw is None:
        return None
    p = "storage"
    m = r.mapping(raw, p, {"endpoint", "region", "issuers", "admin_access_key_env", "admin_secret_key_env", "http_base_url", "http_token_env", "max_ttl_s",
                           "node_endpoint", "performance", "disruption_command", "disruption_runs", "rgw_restart_command", "race_rounds",
                           "stale_after_s"}, {"endpoint"})
    issuers = r.get(m, "issuers", p, as_str_list, ("rgw-user",))
    for kind in issuers:
        if kind not in ISSUER_KINDS:
            r.problem(f"{p}.issuers", f"unknown issuer kind {kind!r} (known: {', '.join(ISSUER_KINDS)})")
    s = StorageSettings(
        endpoint=r.get(m, "endpoint", p, as_text, ""),
        region=r.get(m, "region", p, as_text, "default"),
        issuers=issuers,
        admin_access_key_env=r.get(m, "admin_access_key_env", p, as_env_name, None),
        admin_secret_key_env=r.get(m, "admin_secret_key_env", p, as_env_name, None),
        http_base_url=r.get(m, "http_base_url", p, as_text, None),
        http_token_env=r.get(m, "http_token_env", p, as_env_name, None),
        max_ttl_s=r.get(m, "max_ttl_s", p, as_int(1), 604800),
        node_endpoint=r.get(m, "node_endpoint", p, as_text, None),
        performance=read_performance(r, m.get("performance")),
        disruption_command=read_command(r, m.get("disruption_command"), f"{p}.disruption_command"),
        disruption_runs=r.get(m, "disruption_runs", p, as_int(1, 100), 1),
        rgw_restart_command=read_command(r, m.get("rgw_restart_command"), f"{p}.rgw_restart_command"),
        race_rounds=r.get(m, "race_rounds", p, as_int(1, 1000), 3),
        stale_after_s=r.get(m, "stale_after_s", p, as_int(600), 21600),
    )
    if s.node_endpoint and not s.node_endpoint.startswith(("http://", "https://")):
        r.problem(f"{p}.node_endpoint", f"expected an http:// or https:// URL, got {s.node_endpoint!r}")
    if s.endpoint and not s.endpoint.startswith(("http://", "https://")):
        r.problem(f"{p}.endpoint", f"expected an http:// or https:// URL, got {s.endpoint!r}")
    if {"rgw-user", "sts"} & set(issuers) and not (s.admin_access_key_env and s.admin_secret_key_env):
        r.problem(f"{p}.admin_access_key_env", "missing (the rgw-user and sts issuers need admin credentials from the environment)")
    if "http" in issuers and not s.http_base_url:
        r.problem(f"{p}.http_base_url", "missing (the http issuer needs the provider's credential API URL)")
    return s


_TOP = {"name", "nodes", "ssh", "network", "nccl_tests", "thresholds", "storage", "standin", "env_file", "references",
        "network_checks", "slurm", "health", "localize", "node_collectives", "rails"}


def _allocation_nodes(r: FieldReader, slurm: SlurmSettings, environ: Mapping[str, str], ssh_user: str) -> tuple[Node, ...]:
    """The allocation's nodes, reached over SSH by their Slurm names."""
    return tuple(Node(name=n, host=n, user=ssh_user, slots=slurm.slots_per_node) for n in allocation_nodes(r, environ))


def parse_inventory(data: Any, source: str = "<memory>", environ: Mapping[str, str] | None = None) -> Inventory:
    """Validate a parsed YAML document and return the inventory.

    ``environ`` (default ``os.environ``) is read only for ``slurm.from_allocation``: the nodes then come from
    ``SLURM_JOB_NODELIST`` instead of ``nodes:``.

    Raises:
        InventoryError: with one message per problem, each naming the field.
    """
    r = FieldReader()
    env = os.environ if environ is None else environ
    raw_slurm = data.get("slurm") if isinstance(data, dict) else None
    from_alloc = isinstance(raw_slurm, dict) and raw_slurm.get("from_allocation") is True
    top = r.mapping(data, "", _TOP, set() if from_alloc else {"nodes"})
    ssh = _read_ssh(r, top.get("ssh"))
    slurm = read_slurm(r, top.get("slurm"), env)
    if from_alloc and top.get("nodes") is not None:
        r.problem("nodes", "given together with slurm.from_allocation: true (the allocation names the nodes; drop one)")
    inv = Inventory(
        name=r.get(top, "name", "", as_name, Path(source).stem if source != "<memory>" else "cluster"),
        nodes=(_allocation_nodes(r, slurm, env, ssh.user) if slurm is not None and slurm.from_allocation
               else _read_nodes(r, top.get("nodes"), ssh.user) if "nodes" in top else ()),
        ssh=ssh,
        network=_read_network(r, top.get("network")),
        nccl_tests=_read_nccl(r, top.get("nccl_tests")),
        thresholds=read_thresholds(r, top.get("thresholds")),
        storage=_read_storage(r, top.get("storage")),
        source=source,
        standin=r.get(top, "standin", "", as_bool, False),
        env_file=r.get(top, "env_file", "", as_path, None),
        localize=read_localize(r, top.get("localize")),
        node_collectives=read_node_collectives(r, top.get("node_collectives"), COLLECTIVES),
        rails=read_rails(r, top.get("rails"), COLLECTIVES),
        references=read_references(r, top.get("references"), source),
        network_checks=read_network_checks(r, top.get("network_checks")),
        health=read_health(r, top.get("health")),
        slurm=slurm,
    )
    if slurm is not None and slurm.exclude:  # excluded nodes (e.g. the last run's unfit ones) are not tested either
        inv = _replace(inv, nodes=tuple(n for n in inv.nodes if n.name not in set(slurm.exclude)))
        if not inv.nodes and not r.problems:
            r.problem("slurm.exclude", "leaves no node to test")
    if r.problems:
        raise InventoryError(source, r.problems)
    return inv


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate a cluster file.

    Raises:
        InventoryError: the file is missing, is not YAML, or has problems (all of them listed).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InventoryError(str(p), [f"cannot read the file: {e.strerror or e}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InventoryError(str(p), [f"{where}not valid YAML ({getattr(e, 'problem', e)})"]) from None
    return parse_inventory(data, str(p))


def read_env_file(path: str | Path) -> dict[str, str]:
    """Read a ``KEY=VALUE`` secrets file. It must be readable by its owner only.

    Raises:
        InventoryError: naming the file and line when it is missing, too open, or malformed.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode & 0o777
        text = p.read_text()
    except OSError as e:
        raise InventoryError(str(p), [f"env_file: cannot read: {e.strerror or e}"]) from None
    if mode & 0o077:
        raise InventoryError(str(p), [f"env_file: mode {mode:o} lets others read the secrets; chmod 600 {p}"])
    out: dict[str, str] = {}
    problems = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not ENV_NAME_RE.match(key.strip()):
            problems.append(f"line {i}: expected NAME=VALUE")
            continue
        out[key.strip()] = value.strip().strip("'\"")
    if problems:
        raise InventoryError(str(p), problems)
    return out
