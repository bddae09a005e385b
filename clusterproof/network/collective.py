"""Launch one nccl-tests collective across a set of nodes, keep its raw logs, and clean up on every path.

The launcher (``mpirun`` or ``srun``) runs on the first node of the set, in a scratch directory
``/tmp/clusterproof/<run_id>/<job_id>/`` that exists on every node of the set: the launcher's output goes to
``out.log`` there (so a run that times out still leaves a log to fetch), and NCCL writes one debug file per
process there (``NCCL_DEBUG_FILE``). An SSH timeout does not stop the remote launcher, so on a timeout or any
failure every process carrying this job's marker (``CLUSTERPROOF_JOB=<job_id>`` in its environment, exported to
every rank, and as the unknown MCA parameter ``clusterproof_job`` on mpirun's and every ``orted``'s command line)
is ended by pid on every node of the set.

OpenMPI's session directory goes into the scratch directory too (``orte_tmpdir_base``, passed on to every
orted), so removing the scratch directory on every node, after every run, leaves nothing of the job anywhere.
That removal is checked and retried once; whatever could not be removed or ended is in
:attr:`CollectiveResult.cleanup_errors`, judged by :func:`cleanup_findings` (``Criterion.REMOTE_CLEANUP``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shlex
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from clusterproof.errors import ClusterproofError, ParseError
from clusterproof.findings import Criterion, Evidence, Finding, Subject, failed, node_subject, passed
from clusterproof.inventory import Inventory, Node, SweepSpec
from clusterproof.network import nccl, nccl_debug, srun_job
from clusterproof.network.launch import HostSlot, Mpirun, NcclTestsCommand, Srun, render
from clusterproof.network.localize_model import FailureKind
from clusterproof.network.peer_cut import PeerCut, PeerWatch, SlowCut
from clusterproof.nodes.ssh import SshPool
from clusterproof.nodes.ssh_exec import CommandResult
from clusterproof.redact import redact

log = logging.getLogger(__name__)

JOB_MARKER = "CLUSTERPROOF_JOB"
DEFAULT_LOCK_DIR = Path("/tmp/clusterproof-locks")


@dataclass
class CollectiveResult:
    """Everything one collective run produced."""

    job_id: str
    collective: str
    nodes: list[str]
    command: str  # the launcher command line as run on the head node (secrets redacted)
    rc: int | None
    timed_out: bool
    seconds: float  # the launch itself, not the wait for the fabric lock
    log_path: Path
    log_text: str
    run: nccl.NcclRun | None
    parse_error: str | None = None
    debug_files: dict[str, str] = field(default_factory=dict)  # "<node>/<file>" -> text (redacted)
    cleanup_errors: list[str] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # node name -> the address the launcher was given
    not_launched: str | None = None  # why nothing was launched (a node of the set already known to be down)
    cut: str | None = None  # why a search run was ended early (its peers were long done), with the times
    cut_as: FailureKind | None = None  # what the cut took it for: hung or slow (see peer_cut)

    @classmethod
    def skipped_launch(cls, collective: str, nodes: list[str], why: str) -> CollectiveResult:
        """The result of a run that was not launched at all, saying why (nothing ran, so nothing is left)."""
        return cls(job_id="", collective=collective, nodes=nodes, command="", rc=None, timed_out=False, seconds=0.0,
                   log_path=Path("(not launched)"), log_text="", run=None, parse_error=why, not_launched=why)

    @property
    def head(self) -> str:
        return self.nodes[0]


@dataclass(frozen=True)
class RunRequest:
    """One collective on one node set, for :meth:`CollectiveRunner.run_many`."""

    collective: str
    nodes: tuple[Node, ...]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    sweep: SweepSpec | None = None
    extra_mca: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    job_id: str
    collective: str
    nodes: list[str]
    scratch: str
    command: str  # shell command run on the head node
    debug: bool


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


def launcher_argv(inv: Inventory, collective: str, nodes: Sequence[Node], env: Mapping[str, str], sweep: SweepSpec | None = None,
                  extra_mca: Mapping[str, str] | None = None) -> list[str]:
    """The launcher argv for ``collective`` on ``nodes`` in the inventory's own form.

    mpirun carries the environment as ``-x NAME=VALUE``. srun's ``--export`` cannot carry a value with a comma
    (``NCCL_DEBUG_SUBSYS=INIT,NET``, ``NCCL_IB_HCA==mlx5_0:1,mlx5_1:1``), so for srun the variables are set by
    ``env NAME=VALUE ... srun --export=ALL``.
    """
    settings = inv.nccl_tests
    binary = f"{settings.bin_dir.rstrip('/')}/{collective}_perf"
    cmd = _sweep_command(binary, sweep or settings.sweep)
    mca = {**settings.mca, **(extra_mca or {})}
    if JOB_MARKER in env:  # tags mpirun and every orted on their command line, and puts the session dir in scratch
        mca.setdefault("clusterproof_job", env[JOB_MARKER])
        if "CLUSTERPROOF_SCRATCH" in env:
            mca.setdefault("orte_tmpdir_base", env["CLUSTERPROOF_SCRATCH"])
    if settings.launcher == "srun":
        slots = {n.slots for n in nodes}
        if len(slots) != 1:
            raise ClusterproofError(f"{inv.source}: srun needs the same slots on every node, got {sorted(slots)}")
        slurm = inv.slurm
        srun = Srun(nodes=len(nodes), ntasks_per_node=slots.pop(), env={}, nodelist=[n.name for n in nodes],
                    mpi=slurm.mpi if slurm else "pmix", srun=slurm.srun if slurm else "srun",
                    extra_args=tuple(srun_job.srun_job_options(slurm, env.get(JOB_MARKER), settings.timeout_s))).argv(cmd)
        return ["env", *(f"{k}={v}" for k, v in env.items()), *srun] if env else srun
    return Mpirun(hosts=[HostSlot(n.host, n.slots) for n in nodes], env=env, mca=mca, mpirun=settings.mpirun).argv(cmd)


def _not_itself(job_id: str) -> str:
    """A grep pattern that matches exactly ``job_id`` but not itself: the grep of another scan of the same job (a
    peer cut and the run's own cleanup can overlap) has the pattern in its command line, and a literal job id there
    would be taken for one of the job's processes."""
    if not job_id or not all(c.isalnum() or c in "_-." for c in job_id):
        raise ValueError(f"job id {job_id!r}: only letters, digits, '_', '-' and '.' can be matched safely")
    return "".join(f"[{c}]" if i == 0 or c == "." else c for i, c in enumerate(job_id))


def _kill_marked_command(job_id: str, signal: str) -> str:
    """A shell command that sends ``signal`` to every process whose environment carries this job's marker, or whose
    command line has the job id as one argument (mpirun and the orteds, via ``--mca clusterproof_job``), and prints
    their pids. Two grep processes read every /proc entry (a loop of two greps per process cost 0.44 s of CPU for 83
    processes on a sandbox node; a GPU node runs hundreds)."""
    marker = shlex.quote(f"{JOB_MARKER}={job_id}")
    pattern = shlex.quote(_not_itself(job_id))
    return (
        f"for p in $({{ grep -lsxzF -e {marker} /proc/[0-9]*/environ; grep -lsxz -e {pattern} /proc/[0-9]*/cmdline; }} "
        f"| sed 's|^/proc/||; s|/.*||' | sort -un); do "
        f"kill -{signal} \"$p\" 2>/dev/null && echo \"$p\"; "
        f"done; true"
    )


@contextmanager
def file_lock(lock_dir: Path, name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on this machine (pytest-xdist workers, parallel CI jobs).

    The directory must belong to us and the lock file is opened without following symlinks, so another local
    user cannot point it at a file of ours.
    """
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if lock_dir.stat().st_uid != os.geteuid():
        raise ClusterproofError(f"{lock_dir}: lock directory belongs to another user; remove it or choose another")
    fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class CollectiveRunner:
    """Runs collectives for one test session; raw logs and NCCL debug files are kept under ``log_dir``."""

    def __init__(self, pool: SshPool, inventory: Inventory, run_id: str, log_dir: Path, lock_dir: Path | None = None) -> None:
        self.pool = pool
        self.inventory = inventory
        self.run_id = run_id
        self.log_dir = log_dir
        self.lock_dir = lock_dir or DEFAULT_LOCK_DIR

    def run(
        self,
        collective: str,
        nodes: Sequence[Node],
        extra_env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        sweep: SweepSpec | None = None,
        extra_mca: Mapping[str, str] | None = None,
    ) -> CollectiveResult:
        """Run ``collective`` across ``nodes`` (the first is the head) and return its parsed result.

        Fabric runs of one cluster never overlap (a machine-wide lock). Never raises for a failed run: the result
        carries rc, timeout, parse errors and the raw log; the caller judges it.

        Raises:
            NodeUnreachable: the head node cannot be reached at all.
        """
        job = self._prepare(collective, nodes, extra_env, sweep, extra_mca)
        timeout = timeout_s if timeout_s is not None else self.inventory.nccl_tests.timeout_s
        with file_lock(self.lock_dir, f"fabric-{self.inventory.name}"):
            started = time.monotonic()
            result, errors = self._launch(job, timeout)
            seconds = time.monotonic() - started
        return self._collect(job, result, seconds, errors)

    def run_many(self, requests: Sequence[RunRequest],
                 peer_cut: PeerCut | SlowCut | None = None) -> list[CollectiveResult | ClusterproofError]:
        """Run several collectives on disjoint node sets at the same time: one round of the bad-node search.

        The fabric lock is held once for the whole round (the runs are meant to share the fabric with each
        other, never with another test). Returns one item per request, in order: its result, or the error that
        kept it from starting. A run that times out has its processes ended on every node of its set, as in
        :meth:`run`. With ``peer_cut``, a run still going long after its peers finished cleanly is ended then
        and reported as timed out, with the reason in its ``cut`` and the rule's verdict (hung or slow) in
        ``cut_as`` (:mod:`clusterproof.network.peer_cut`).
        """
        seen: set[str] = set()
        for req in requests:
            names = [n.name for n in req.nodes]
            if seen & set(names):
                raise ValueError(f"run_many: node sets overlap on {', '.join(sorted(seen & set(names)))}")
            seen.update(names)
        default = self.inventory.nccl_tests.timeout_s
        jobs = [self._prepare(r.collective, r.nodes, r.extra_env, r.sweep, r.extra_mca) for r in requests]

        watch = PeerWatch(len(jobs), peer_cut) if peer_cut is not None else None
        ended = threading.Event()  # set by the last run to finish: the watcher stops at once, not at its next poll

        def one(item: tuple[int, _Job, RunRequest]) -> CollectiveResult | ClusterproofError:
            i, job, req = item
            started = time.monotonic()
            if watch is not None:
                watch.started(i)
            clean = False
            try:
                result, errors = self._launch(job, req.timeout_s if req.timeout_s is not None else default)
                clean = result is not None and result.ok and not result.timed_out
            except ClusterproofError as e:
                return e
            finally:  # always, so that the watcher ends with the round
                if watch is not None:
                    watch.finished(i, clean=clean)
                    if watch.all_done:
                        ended.set()
            res = self._collect(job, result, time.monotonic() - started, errors)
            why = watch.reason(i) if watch is not None else None
            return replace(res, rc=None, timed_out=True, cut=why, cut_as=watch.cut.kind) if watch and why else res

        def cut_due() -> None:
            assert watch is not None
            while not watch.all_done:
                for i in watch.due():
                    log.info("%s: %s", jobs[i].job_id, watch.reason(i))
                    self._kill_job(jobs[i].job_id, jobs[i].nodes)
                ended.wait(0.1)

        if not jobs:
            return []
        with file_lock(self.lock_dir, f"fabric-{self.inventory.name}"), ThreadPoolExecutor(max_workers=len(jobs) + 1) as pool:
            watcher = pool.submit(cut_due) if watch is not None else None
            out = list(pool.map(one, [(i, job, req) for i, (job, req) in enumerate(zip(jobs, requests, strict=True))]))
            if watcher is not None:
                watcher.result()
            return out

    def command_for(self, collective: str, nodes: Sequence[Node], extra_env: Mapping[str, str] | None = None,
                    sweep: SweepSpec | None = None) -> tuple[str, str]:
        """``(scratch_dir, shell command)`` exactly as :meth:`run` would launch it on the head node (a fresh job id);
        for benchmarks that compare the suite with the same command run by hand."""
        job = self._prepare(collective, nodes, extra_env, sweep)
        return job.scratch, job.command

    def _prepare(self, collective: str, nodes: Sequence[Node], extra_env: Mapping[str, str] | None, sweep: SweepSpec | None,
                 extra_mca: Mapping[str, str] | None = None) -> _Job:
        settings = self.inventory.nccl_tests
        names = [n.name for n in nodes]
        job_id = f"{collective}-{len(nodes)}n-{secrets.token_hex(3)}"
        scratch = f"/tmp/clusterproof/{self.run_id}/{job_id}"
        env: dict[str, str] = dict(settings.env)
        env.update(extra_env or {})
        env.update(nccl_debug.nccl_debug_env(settings.debug, scratch, network=settings.expect_net))
        if "NCCL_DEBUG_FILE" in env:
            env["NCCL_DEBUG_FILE"] = f"{scratch}/nccl.%h.%p.log"  # one file per process, on its own node
        env[JOB_MARKER] = job_id
        env["CLUSTERPROOF_SCRATCH"] = scratch
        launch = render(launcher_argv(self.inventory, collective, nodes, env, sweep, extra_mca))
        q = shlex.quote(scratch)
        command = f"mkdir -p {q} && cd {q} && {JOB_MARKER}={shlex.quote(job_id)} {launch} > out.log 2>&1"
        return _Job(job_id, collective, names, scratch, command, debug=settings.debug != "off")

    def _launch(self, job: _Job, timeout: float) -> tuple[CommandResult | None, list[str]]:
        """Make the scratch directory on every node (NCCL writes its files there), run the launcher on the head,
        and end the job's processes on every node when it did not finish cleanly."""
        errors: list[str] = []
        others = job.nodes[1:]
        if others:  # NCCL debug files and the orteds' session directories go there
            for node, res in self.pool.run_all(f"mkdir -p {shlex.quote(job.scratch)}", nodes=others, timeout=30).items():
                if isinstance(res, Exception) or not res.ok:
                    errors.append(f"{node}: could not create {job.scratch}: {res if isinstance(res, Exception) else res.stderr.strip()}")
        result: CommandResult | None = None
        try:
            result = self.pool.run(job.nodes[0], job.command, timeout=timeout)
        finally:
            if result is None or result.timed_out or not result.ok:
                if self.inventory.nccl_tests.launcher == "srun":
                    errors += self._cancel_srun(job)
                errors += self._kill_job(job.job_id, job.nodes)
        return result, errors

    def _cancel_srun(self, job: _Job) -> list[str]:
        """scancel the job's srun step (and its job, outside an allocation) and wait until squeue lists neither."""
        try:
            res = self.pool.run(job.nodes[0], srun_job.cancel_command(job.job_id), timeout=30)
        except ClusterproofError as e:
            return [f"{job.nodes[0]}: could not scancel job {job.job_id}: {e}"]
        left = [line for line in res.stdout.splitlines() if line.startswith("left:")]
        log.info("%s: %s", job.nodes[0], res.stdout.strip())
        return [f"{job.nodes[0]}: Slurm still lists job {job.job_id} after scancel ({left[0]})"] if left else []

    def _collect(self, job: _Job, result: CommandResult | None, seconds: float, errors: list[str]) -> CollectiveResult:
        """Fetch the launcher log and the NCCL debug files, remove the scratch directories, keep and parse."""
        assert result is not None
        head = job.nodes[0]
        log_text = redact(self._fetch_log(head, f"{job.scratch}/out.log", errors))
        debug_files = self._fetch_debug_and_clean(job, errors)
        header = f"# clusterproof job {job.job_id} on {','.join(job.nodes)}\n# command: {redact(job.command)}\n"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{job.job_id}.log"
        log_path.write_text(header + log_text)
        if debug_files:  # the raw evidence behind the transport checks stays with the report
            nccl_dir = self.log_dir / job.job_id
            nccl_dir.mkdir(exist_ok=True)
            for name, text in debug_files.items():
                (nccl_dir / name.replace("/", "-")).write_text(text)
        run: nccl.NcclRun | None = None
        parse_error = None
        try:
            run = nccl.parse(log_text, binary=f"{job.collective}_perf")
        except ParseError as e:
            parse_error = f"{log_path.name}: {e}"
        return CollectiveResult(
            job_id=job.job_id,
            collective=job.collective,
            nodes=job.nodes,
            command=redact(job.command),
            rc=None if result.timed_out else result.rc,
            timed_out=result.timed_out,
            seconds=seconds,
            log_path=log_path,
            log_text=log_text,
            run=run,
            parse_error=parse_error,
            debug_files=debug_files,
            cleanup_errors=errors,
            hosts={n: self.pool.node(n).host for n in job.nodes},
        )

    def _kill_job(self, job_id: str, nodes: Sequence[str], grace_s: float = 2.0) -> list[str]:
        """End this job's processes on every node: TERM first (mpirun tears its daemons down), then KILL whatever
        is still there after ``grace_s`` (checked every ``_KILL_POLL_S``: a cut search run ended 0.05 s after its
        TERM, and a 0.2 s poll kept its whole round waiting for the rest)."""
        errors: list[str] = []

        def send(signal: str, targets: Sequence[str]) -> list[str]:
            """Signal the job's processes on ``targets``; return the nodes where some were found."""
            found = []
            for node, res in self.pool.run_all(_kill_marked_command(job_id, signal), nodes=list(targets), timeout=30).items():
                if isinstance(res, Exception):
                    errors.append(f"{node}: could not clean up job {job_id}: {res}")
                elif res.stdout.strip():
                    found.append(node)
                    if signal != "0":
                        log.info("%s: sent SIG%s to pids %s of job %s", node, signal, res.stdout.split(), job_id)
            return found

        alive = send("TERM", nodes)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            time.sleep(_KILL_POLL_S)
            alive = send("0", alive)  # signal 0: only lists the processes still there
        if alive:
            send("KILL", alive)
            time.sleep(0.2)  # SIGKILL is delivered asynchronously
            for node in send("0", alive):
                errors.append(f"{node}: processes of job {job_id} survived SIGKILL")
        return errors

    def _fetch_log(self, head: str, path: str, errors: list[str]) -> str:
        try:
            return self.pool.get(head, path).decode(errors="replace")
        except Exception as e:  # a launcher that never started leaves no log: say so in the log itself
            errors.append(f"{head}: no launcher log at {path}: {e}")
            return f"# clusterproof: no launcher log could be read from {head}:{path} ({e})\n"

    def _fetch_debug_and_clean(self, job: _Job, errors: list[str]) -> dict[str, str]:
        """One round trip per node: print this job's NCCL debug files, remove the scratch directory (with OpenMPI's
        session directory in it, and the run's directory once it is empty) and say whether it is really gone; a
        node where it is not gets one more try, then an error naming the node and the path."""
        q = shlex.quote(job.scratch)
        parent = shlex.quote(job.scratch.rsplit("/", 1)[0])
        show = f"for f in {q}/nccl.*.log; do [ -f \"$f\" ] || continue; printf '==> %s <==\\n' \"${{f##*/}}\"; cat \"$f\"; done; " if job.debug else ""
        remove = f"rm -rf {q}; rmdir {parent} 2>/dev/null; if [ -e {q} ]; then echo '{_LEFT}'; fi; true"
        files: dict[str, str] = {}
        retry: list[str] = []
        for node, res in self.pool.run_all(show + remove, nodes=job.nodes, timeout=60).items():
            if isinstance(res, Exception) or _LEFT in res.stdout:
                retry.append(node)
            if isinstance(res, Exception):
                continue
            files.update(_debug_files(node, res.stdout))
        if retry:
            for node, res in self.pool.run_all(remove, nodes=retry, timeout=60).items():
                if isinstance(res, Exception):
                    errors.append(f"{node}: could not remove {job.scratch} (tried twice): {res}")
                elif _LEFT in res.stdout or not res.ok:
                    errors.append(f"{node}: {job.scratch} is still there after two tries ({res.stderr.strip() or 'rm -rf failed'})")
        return files


#: How often :meth:`CollectiveRunner._kill_job` looks whether a signalled job is gone (one ssh command per node).
_KILL_POLL_S = 0.05
#: What the removal prints when the scratch directory is still there afterwards.
_LEFT = "::clusterproof-left-behind"


def _debug_files(node: str, stdout: str) -> dict[str, str]:
    files: dict[str, str] = {}
    name: str | None = None
    buf: list[str] = []
    for line in stdout.splitlines():
        if line == _LEFT:
            continue
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


def cleanup_findings(res: CollectiveResult, label: str) -> list[Finding]:
    """``Criterion.REMOTE_CLEANUP`` for one run: a PASS when nothing of it is left on any node, else one FAIL per
    node that kept a process or a file (the message names node and what is left)."""
    subject_of = {n: node_subject(n) for n in res.nodes}
    fails = []
    for line in res.cleanup_errors:
        node = line.split(":", 1)[0]
        subject = subject_of.get(node, Subject("node_set", label))
        fails.append(failed(Criterion.REMOTE_CLEANUP, subject, f"{label}: {line}", evidence=[Evidence(f"logs/{res.log_path.name}")]))
    if fails:
        return fails
    return [passed(Criterion.REMOTE_CLEANUP, Subject("node_set", label),
                   f"{label}: no process, scratch file or session directory left on {len(res.nodes)} node(s)")]
