"""Launch one nccl-tests collective across a set of nodes, keep its raw log, and clean up on every path.

The launcher (``mpirun`` or ``srun``) runs on the first node of the set, in a remote scratch directory
``/tmp/clusterproof/<run_id>/<job_id>/``. Its output goes to a file there, so a run that times out still leaves a
log to fetch. An SSH timeout does not stop the remote launcher, so on a timeout or any failure every process
carrying this job's marker (``CLUSTERPROOF_JOB=<job_id>`` in its environment, exported to every rank with
``-x``/``--export``) is ended by pid on every node of the set.
"""

from __future__ import annotations

import fcntl
import logging
import secrets
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from clusterproof import nccl, nccl_debug
from clusterproof.errors import ParseError
from clusterproof.inventory import Inventory, Node, SweepSpec
from clusterproof.launch import HostSlot, Mpirun, NcclTestsCommand, Srun, render
from clusterproof.redact import redact
from clusterproof.ssh import CommandResult, SshPool

log = logging.getLogger(__name__)

JOB_MARKER = "CLUSTERPROOF_JOB"


@dataclass
class CollectiveResult:
    """Everything one collective run produced."""

    job_id: str
    collective: str
    nodes: list[str]
    command: str  # the launcher command line as run on the head node (secrets redacted)
    rc: int | None
    timed_out: bool
    seconds: float
    log_path: Path
    log_text: str
    run: nccl.NcclRun | None
    parse_error: str | None = None
    debug_files: dict[str, str] = field(default_factory=dict)
    cleanup_errors: list[str] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.nodes[0]


def _sweep_command(binary: str, sweep: SweepSpec) -> NcclTestsCommand:
    return NcclTestsCommand(
        binary=binary,
        min_bytes=sweep.min_bytes,
        max_bytes=sweep.max_bytes,
        step_factor=sweep.step_factor,
        iters=sweep.iters,
        warmup_iters=sweep.warmup_iters,
        gpus_per_rank=sweep.gpus_per_rank,
        check=sweep.check,
    )


def launcher_argv(inv: Inventory, collective: str, nodes: Sequence[Node], env: Mapping[str, str], sweep: SweepSpec | None = None) -> list[str]:
    """The launcher argv for ``collective`` on ``nodes`` in the inventory's own form (mpirun or srun)."""
    settings = inv.nccl_tests
    binary = f"{settings.bin_dir.rstrip('/')}/{collective}_perf"
    cmd = _sweep_command(binary, sweep or settings.sweep)
    if settings.launcher == "srun":
        slots = {n.slots for n in nodes}
        if len(slots) != 1:
            raise ValueError(f"{inv.source}: srun needs the same slots on every node, got {sorted(slots)}")
        return Srun(nodes=len(nodes), ntasks_per_node=slots.pop(), env=env, nodelist=[n.name for n in nodes]).argv(cmd)
    return Mpirun(hosts=[HostSlot(n.host, n.slots) for n in nodes], env=env, mca=settings.mca, mpirun=settings.mpirun).argv(cmd)


def _kill_marked_command(job_id: str, signal: str) -> str:
    """A shell command that sends ``signal`` to every process whose environment carries this job's marker."""
    marker = shlex.quote(f"{JOB_MARKER}={job_id}")
    return (
        f"for p in /proc/[0-9]*; do "
        f"if grep -qsxz {marker} \"$p/environ\" 2>/dev/null; then kill -{signal} \"${{p#/proc/}}\" 2>/dev/null && echo \"${{p#/proc/}}\"; fi; "
        f"done; true"
    )


@contextmanager
def fabric_lock(lock_dir: Path, cluster: str) -> Iterator[None]:
    """Serialise fabric benchmarks of one cluster across processes (pytest-xdist workers) on this machine."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"fabric-{cluster}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class CollectiveRunner:
    """Runs collectives for one test session: one scratch tree per run, logs kept under ``log_dir``."""

    def __init__(self, pool: SshPool, inventory: Inventory, run_id: str, log_dir: Path, lock_dir: Path | None = None) -> None:
        self.pool = pool
        self.inventory = inventory
        self.run_id = run_id
        self.log_dir = log_dir
        self.lock_dir = lock_dir or Path("/tmp/clusterproof-locks")

    def run(
        self,
        collective: str,
        nodes: Sequence[Node],
        extra_env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        sweep: SweepSpec | None = None,
    ) -> CollectiveResult:
        """Run ``collective`` across ``nodes`` (the first is the head) and return its parsed result.

        Never raises for a failed run: the result carries rc, timeout, parse errors and the raw log; the caller
        judges it. Raises NodeUnreachable when the head node cannot be reached at all.
        """
        settings = self.inventory.nccl_tests
        names = [n.name for n in nodes]
        job_id = f"{collective}-{len(nodes)}n-{secrets.token_hex(3)}"
        scratch = f"/tmp/clusterproof/{self.run_id}/{job_id}"
        debug_dir = "/tmp"  # NCCL_DEBUG_FILE must exist on every node: /tmp does, no round trip to mkdir
        env: dict[str, str] = dict(settings.env)
        env.update(extra_env or {})
        env.update(nccl_debug.nccl_debug_env(settings.debug, debug_dir, network=settings.expect_net))
        if "NCCL_DEBUG_FILE" in env:
            env["NCCL_DEBUG_FILE"] = f"{debug_dir}/clusterproof-{job_id}.%h.%p.nccl.log"
        env[JOB_MARKER] = job_id
        argv = launcher_argv(self.inventory, collective, nodes, env, sweep)
        launch = render(argv)
        remote = (
            f"mkdir -p {shlex.quote(scratch)} && cd {shlex.quote(scratch)} && "
            f"{JOB_MARKER}={shlex.quote(job_id)} {launch} > out.log 2>&1"
        )
        timeout = timeout_s if timeout_s is not None else settings.timeout_s
        head = names[0]
        started = time.monotonic()
        result: CommandResult | None = None
        cleanup_errors: list[str] = []
        with fabric_lock(self.lock_dir, self.inventory.name):
            try:
                result = self.pool.run(head, remote, timeout=timeout)
            finally:
                if result is None or result.timed_out or not result.ok:
                    cleanup_errors += self._kill_job(job_id, names)
        seconds = time.monotonic() - started
        assert result is not None
        log_text = self._fetch_log(head, f"{scratch}/out.log", cleanup_errors)
        debug_files = self._fetch_debug_files(job_id, names, cleanup_errors) if settings.debug != "off" else {}
        self._remove_scratch(head, scratch, cleanup_errors)
        log_text = redact(log_text)
        header = f"# clusterproof job {job_id} on {','.join(names)}\n# command: {redact(launch)}\n"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{job_id}.log"
        log_path.write_text(header + log_text)
        run: nccl.NcclRun | None = None
        parse_error = None
        try:
            run = nccl.parse(log_text, binary=f"{collective}_perf")
        except ParseError as e:
            parse_error = f"{log_path.name}: {e}"
        return CollectiveResult(
            job_id=job_id,
            collective=collective,
            nodes=names,
            command=redact(launch),
            rc=None if result.timed_out else result.rc,
            timed_out=result.timed_out,
            seconds=seconds,
            log_path=log_path,
            log_text=log_text,
            run=run,
            parse_error=parse_error,
            debug_files=debug_files,
            cleanup_errors=cleanup_errors,
        )

    def _kill_job(self, job_id: str, nodes: Sequence[str]) -> list[str]:
        """End this job's processes on every node: TERM first (mpirun tears its daemons down), then KILL."""
        errors: list[str] = []
        for signal, pause in (("TERM", 2.0), ("KILL", 0.0)):
            outcome = self.pool.run_all(_kill_marked_command(job_id, signal), nodes=list(nodes), timeout=30)
            killed = False
            for node, res in outcome.items():
                if isinstance(res, Exception):
                    errors.append(f"{node}: could not clean up job {job_id}: {res}")
                elif res.stdout.strip():
                    killed = True
                    log.info("%s: sent SIG%s to pids %s of job %s", node, signal, res.stdout.split(), job_id)
            if not killed:
                break
            time.sleep(pause)
        return errors

    def _fetch_log(self, head: str, path: str, errors: list[str]) -> str:
        try:
            return self.pool.get(head, path).decode(errors="replace")
        except Exception as e:  # a launcher that never started leaves no log: say so in the log itself
            errors.append(f"{head}: no launcher log at {path}: {e}")
            return f"# clusterproof: no launcher log could be read from {head}:{path} ({e})\n"

    def _fetch_debug_files(self, job_id: str, nodes: Sequence[str], errors: list[str]) -> dict[str, str]:
        """Read and delete this job's NCCL debug files on every node, in one round trip per node."""
        pattern = f"/tmp/clusterproof-{job_id}."
        cmd = (
            f"for f in {shlex.quote(pattern)}*.nccl.log; do [ -f \"$f\" ] || continue; "
            f"printf '==> %s <==\\n' \"${{f##*/}}\"; cat \"$f\"; rm -f \"$f\"; done; true"
        )
        files: dict[str, str] = {}
        for node, res in self.pool.run_all(cmd, nodes=list(nodes), timeout=60).items():
            if isinstance(res, Exception):
                errors.append(f"{node}: could not fetch NCCL debug files: {res}")
                continue
            name: str | None = None
            buf: list[str] = []
            for line in res.stdout.splitlines():
                if line.startswith("==> ") and line.endswith(" <=="):
                    if name:
                        files[name] = redact("\n".join(buf))
                    name = f"{node}/{line[4:-4]}"
                    buf = []
                else:
                    buf.append(line)
            if name:
                files[name] = redact("\n".join(buf))
        return files

    def _remove_scratch(self, head: str, scratch: str, errors: list[str]) -> None:
        try:
            res = self.pool.run(head, f"rm -rf {shlex.quote(scratch)}", timeout=30)
            if not res.ok:
                errors.append(f"{head}: could not remove {scratch}: {res.stderr.strip()}")
        except Exception as e:
            errors.append(f"{head}: could not remove {scratch}: {e}")
