"""The launcher command built from an inventory: the field's own mpirun form, and srun with any env value."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from clusterproof.errors import ClusterproofError
from clusterproof.inventory import parse_inventory
from clusterproof.network.collective import (
    JOB_MARKER,
    _kill_marked_command,
    _not_itself,
    file_lock,
    launcher_argv,
)


def inventory(launcher: str, slots: tuple[int, int] = (8, 8)) -> object:
    return parse_inventory({
        "nodes": [{"name": "node01", "host": "10.1.1.5", "slots": slots[0]}, {"name": "node02", "host": "10.1.1.6", "slots": slots[1]}],
        "ssh": {"key_file": "/k", "known_hosts": "/kh"},
        "nccl_tests": {"bin_dir": "./build", "launcher": launcher, "mca": {"coll": "^hcoll", "pml": "ob1", "btl": "tcp,self"},
                       "sweep": {"min_bytes": "512M", "max_bytes": "8G", "step_factor": 2, "iters": 200, "gpus_per_rank": 1}},
    })


def test_mpirun_from_an_inventory_is_the_fields_own_form() -> None:
    inv = inventory("mpirun")
    argv = launcher_argv(inv, "all_reduce", inv.nodes, {"NCCL_IB_GID_INDEX": "5"})  # type: ignore[attr-defined]
    assert " ".join(argv) == (
        "mpirun -H 10.1.1.5:8,10.1.1.6:8 -x NCCL_IB_GID_INDEX=5 -mca coll ^hcoll -mca pml ob1 -mca btl tcp,self "
        "./build/all_reduce_perf -e 8G -n 200 -b 512M -f 2 -g 1 -w 5 -c 1"
    )


def test_srun_carries_values_with_commas_through_env() -> None:
    inv = inventory("srun")
    env = {"NCCL_DEBUG_SUBSYS": "INIT,NET", "NCCL_IB_HCA": "=mlx5_0:1,mlx5_1:1"}
    argv = launcher_argv(inv, "all_gather", inv.nodes, env)  # type: ignore[attr-defined]
    assert argv[:3] == ["env", "NCCL_DEBUG_SUBSYS=INIT,NET", "NCCL_IB_HCA==mlx5_0:1,mlx5_1:1"]
    assert argv[3:9] == ["srun", "-N", "2", "--ntasks-per-node=8", "--mpi=pmix", "--nodelist=node01,node02"]
    # then the step's own options (labelled output, one failing rank ends the step, Slurm's time limit), the binary
    options = argv[argv.index("--export=ALL") + 1 : argv.index("./build/all_gather_perf")]
    assert options == ["--label", "--kill-on-bad-exit=1", "--time=16"]


def test_srun_needs_equal_slots() -> None:
    inv = inventory("srun", slots=(8, 4))
    with pytest.raises(ClusterproofError, match="srun needs the same slots on every node"):
        launcher_argv(inv, "all_reduce", inv.nodes, {})  # type: ignore[attr-defined]


def test_file_lock_refuses_a_symlinked_lock_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    (locks / "x.lock").symlink_to(victim)
    with pytest.raises(OSError), file_lock(locks, "x"):
        pass
    assert victim.read_text() == "keep me"
    with file_lock(locks, "y"):
        assert (locks / "y.lock").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_command_finds_the_jobs_processes_by_marker_and_by_argument_and_nothing_else() -> None:
    """Run for real on this machine: a process with the job's marker in its environment, one with the job id as
    an argument (as mpirun and the orteds have it), and three decoys (another job's marker; the id inside a longer
    argument; the grep of another scan of the same job, as a cut and the run's own cleanup can overlap). Signal 0
    lists exactly the first two, TERM ends exactly them."""
    job = "all_reduce-2n-a1b2c3"
    sleep = ["sleep", "60"]
    nap = [sys.executable, "-c", "import time; time.sleep(60)"]  # the arguments after it stay in its command line
    procs = {
        "marked": subprocess.Popen(sleep, env={**os.environ, JOB_MARKER: job}),
        "argument": subprocess.Popen([*nap, "--mca", "clusterproof_job", job]),
        "other job": subprocess.Popen(sleep, env={**os.environ, JOB_MARKER: job + "0"}),
        "id inside an argument": subprocess.Popen([*nap, f"x{job}"]),
        "a concurrent scan's grep": subprocess.Popen([*nap, "-lsxz", "-e", _not_itself(job), "/proc/1/cmdline"]),
    }
    try:
        listed = subprocess.run(["bash", "-c", _kill_marked_command(job, "0")], capture_output=True, text=True, check=True)
        assert sorted(map(int, listed.stdout.split())) == sorted([procs["marked"].pid, procs["argument"].pid]), listed.stdout
        subprocess.run(["bash", "-c", _kill_marked_command(job, "TERM")], capture_output=True, text=True, check=True)
        for name in ("marked", "argument"):
            assert procs[name].wait(timeout=5) == -signal.SIGTERM, name
        assert all(_alive(p.pid) for name, p in procs.items() if name not in ("marked", "argument"))
    finally:
        for p in procs.values():  # only the processes this test started, by pid
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.mark.parametrize("bad", ["", "job id", "a;rm -rf", "x$y", "a]b"])
def test_kill_command_refuses_a_job_id_it_cannot_match_safely(bad: str) -> None:
    with pytest.raises(ValueError, match="job id"):
        _kill_marked_command(bad, "0")
