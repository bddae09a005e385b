"""clusterproof.network.launch: exact mpirun/srun argv, and quoting that survives a real shell (and a real mpirun)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clusterproof.network.launch import DEFAULT_FLAG_ORDER, HostSlot, Mpirun, NcclTestsCommand, Srun, render

SEED = (
    "mpirun -H 10.1.1.5:8,10.1.1.6:8 -x NCCL_IB_GID_INDEX=5 -mca coll ^hcoll -mca pml ob1 -mca btl tcp,self "
    "./build/all_reduce_perf -e 8G -n 200 -b 512M -f 2 -g 1"
)
SEED_MCA = {"coll": "^hcoll", "pml": "ob1", "btl": "tcp,self"}
TRICKY = [
    "a b",
    "it's",
    'say "hi"',
    "$HOME and ${PATH}",
    "`id` $(id)",
    "back\\slash",
    "semi;colon & pipe | amp",
    "glob * ? [x]",
    "tab\there",
    "new\nline",
    "ünïcødé",
    "",
    "--looks-like-a-flag",
    "~root",
]
# Prints its argv and one variable as JSON: the "printenv" at the far end of the shell.
PRINTER = (
    "import json, os, sys; print(json.dumps({'argv': sys.argv[1:], 'CP_VALUE': os.environ.get('CP_VALUE')}))"
)


def seed_command() -> NcclTestsCommand:
    return NcclTestsCommand("./build/all_reduce_perf", min_bytes="512M", max_bytes="8G", iters=200)


def seed_hosts() -> list[HostSlot]:
    return [HostSlot("10.1.1.5", 8), HostSlot("10.1.1.6", 8)]


def through_sh(argv: list[str]) -> dict[str, object]:
    """Run ``python -c PRINTER *argv`` through ``/bin/sh -c render(...)`` and return what it printed."""
    line = render([sys.executable, "-c", PRINTER, *argv])
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


# ---------------------------------------------------------------------------------------------------------
# mpirun


def test_launch_mpirun_seed_command_exact() -> None:
    argv = Mpirun(hosts=seed_hosts(), env={"NCCL_IB_GID_INDEX": "5"}, mca=SEED_MCA).argv(seed_command())
    assert argv == SEED.split(" ")
    assert shlex.split(render(argv)) == argv


def test_launch_sizes_as_ints_render_in_human_units() -> None:
    cmd = NcclTestsCommand("./build/all_reduce_perf", min_bytes=512 << 20, max_bytes=8 << 30, iters=200)
    assert (
        cmd.argv()
        == seed_command().argv()
        == "./build/all_reduce_perf -e 8G -n 200 -b 512M -f 2 -g 1".split()
    )
    odd = NcclTestsCommand("x", min_bytes=1000, max_bytes=1536, step_factor=None, gpus_per_rank=None)
    assert odd.argv() == ["x", "-e", "1536", "-b", "1000"]


def test_launch_every_flag_in_documented_order() -> None:
    cmd = NcclTestsCommand(
        "/opt/nccl-tests/build/all_gather_perf",
        min_bytes="1M",
        max_bytes="16G",
        step_bytes="64M",
        iters=20,
        warmup_iters=5,
        gpus_per_rank=1,
        check=1,
        extra_args=("-d", "bfloat16"),
        json_path="/tmp/clusterproof/run 1/ag.json",
    )
    # step_bytes given: -i replaces -f (nccl-tests ignores -i whenever a factor > 1 is set).
    assert cmd.argv() == [
        "/opt/nccl-tests/build/all_gather_perf",
        *("-e", "16G", "-n", "20", "-b", "1M", "-i", "64M", "-g", "1", "-w", "5", "-c", "1"),
        *("-J", "/tmp/clusterproof/run 1/ag.json", "-d", "bfloat16"),
    ]
    natural = ("-b", "-e", "-f", "-i", "-n", "-w", "-g", "-c", "-J")
    assert NcclTestsCommand("x", "512M", "8G", iters=200, flag_order=natural).argv() == (
        "x -b 512M -e 8G -f 2 -n 200 -g 1".split()
    )
    assert set(natural) == set(DEFAULT_FLAG_ORDER)


def test_launch_mpirun_np_extra_args_and_order() -> None:
    m = Mpirun(
        hosts=[HostSlot("node1", 2)],
        env={"B": "2", "A": "1"},
        mca={"pml": "ob1", "btl": "tcp,self"},
        mpirun="/usr/bin/mpirun",
        np=2,
        extra_args=("--bind-to", "none"),
    )
    assert m.argv(seed_command())[:14] == [
        "/usr/bin/mpirun", "-H", "node1:2", "-np", "2", "-x", "B=2", "-x", "A=1",
        "-mca", "pml", "ob1", "-mca", "btl",
    ]  # fmt: skip
    assert m.argv(seed_command())[14:18] == ["tcp,self", "--bind-to", "none", "./build/all_reduce_perf"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: NcclTestsCommand("x", "8X", "8G"), r"min_bytes: not a size: '8X'"),
        (lambda: NcclTestsCommand("x", "8G", "512M"), r"min_bytes 8G is larger than max_bytes 512M"),
        (lambda: NcclTestsCommand("x", "1M", "8G", iters=0), r"iters must be an int >= 1"),
        (lambda: NcclTestsCommand("", "1M", "8G"), r"binary: empty"),
        (lambda: NcclTestsCommand("x", "1M", "8G", flag_order=("-b", "-e")), r"flag_order must list each"),
        (lambda: HostSlot("10.1.1.5:8", 8), r"HostSlot.host"),
        (lambda: HostSlot("node1", 0), r"slots must be an int >= 1"),
        (lambda: Mpirun(hosts=[], env={}, mca={}), r"Mpirun.hosts: empty"),
        (
            lambda: Mpirun(hosts=seed_hosts(), env={"NCCL-IB": "1"}, mca={}),
            r"env name 'NCCL-IB' is not a valid",
        ),
        (lambda: Mpirun(hosts=seed_hosts(), env={"1X": "1"}, mca={}), r"env name '1X'"),
        (lambda: Mpirun(hosts=seed_hosts(), env={}, mca={"btl tcp": "x"}), r"MCA parameter name 'btl tcp'"),
        (
            lambda: Srun(2, 8, {"NCCL_SOCKET_IFNAME": "eth0,eth1"}),
            r"env NCCL_SOCKET_IFNAME='eth0,eth1' contains a comma",
        ),
        (lambda: Srun(2, 8, {"X Y": "1"}), r"env name 'X Y'"),
        (lambda: Srun(0, 8, {}), r"Srun.nodes must be an int >= 1"),
        (lambda: Srun(2, 8, {}, nodelist=["a,b"]), r"Srun.nodelist: 'a,b'"),
    ],
)
def test_launch_bad_input_is_a_clear_value_error(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------------------
# srun


def test_launch_srun_form() -> None:
    env = {"NCCL_IB_GID_INDEX": "5", "NCCL_DEBUG": "INFO"}
    argv = Srun(nodes=2, ntasks_per_node=8, env=env, nodelist=["node1", "node2"]).argv(seed_command())
    assert argv == (
        "srun -N 2 --ntasks-per-node=8 --mpi=pmix --nodelist=node1,node2 "
        "--export=ALL,NCCL_IB_GID_INDEX=5,NCCL_DEBUG=INFO ./build/all_reduce_perf -e 8G -n 200 -b 512M -f 2 -g 1"
    ).split(" ")
    bare = Srun(nodes=3, ntasks_per_node=1, env={}, mpi="pmi2", srun="/usr/bin/srun", extra_args=("-l",))
    assert bare.argv(seed_command())[:7] == [
        "/usr/bin/srun", "-N", "3", "--ntasks-per-node=1", "--mpi=pmi2", "--export=ALL", "-l",
    ]  # fmt: skip


def test_launch_srun_export_value_with_spaces_survives_the_shell() -> None:
    value = "a b 'c' \"d\""
    argv = Srun(nodes=2, ntasks_per_node=8, env={"CP_VALUE": value}).argv(seed_command())
    got = through_sh(argv)
    assert got["argv"] == argv
    assert f"--export=ALL,CP_VALUE={value}" in argv


# ---------------------------------------------------------------------------------------------------------
# render: a real shell in between


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_launch_render_env_value_round_trips_through_sh(value: str) -> None:
    argv = Mpirun(hosts=seed_hosts(), env={"CP_VALUE": value}, mca=SEED_MCA).argv(seed_command())
    got = through_sh(argv)
    assert got["argv"] == argv  # every element arrives unchanged ...
    assert argv[argv.index("-x") + 1] == f"CP_VALUE={value}"  # ... including the -x NAME=VALUE one


def test_launch_render_env_assignment_reaches_the_environment() -> None:
    """``env NAME=VALUE prog`` rendered and run by sh: the program sees the exact value in its environment."""
    value = "spaces  and 'single' \"double\" $dollar `tick` \\ back"
    got = through_sh_env(value)
    assert got == value


def through_sh_env(value: str) -> object:
    line = render(["env", f"CP_VALUE={value}", sys.executable, "-c", PRINTER])
    done = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)["CP_VALUE"]


def test_launch_render_rejects_nul_and_empty() -> None:
    with pytest.raises(ValueError, match=r"argv\[1\] contains a NUL"):
        render(["echo", "a\0b"])
    with pytest.raises(ValueError, match="empty argv"):
        render([])


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun (openmpi-bin) not installed")
def test_launch_mpirun_carries_tricky_env_value_to_the_rank(tmp_path: Path) -> None:
    """A real Open MPI run on localhost (1 rank, the seed's MCA params): the -x value reaches the process."""
    value = "a b 'c' \"d\" $x `y` ;&| ünï"
    printer = tmp_path / "all_reduce_perf"
    printer.write_text(f"#!{sys.executable}\n{PRINTER.replace('; ', chr(10))}\n")
    printer.chmod(0o755)
    cmd = NcclTestsCommand(str(printer), min_bytes="512M", max_bytes="8G", iters=200)
    argv = Mpirun(hosts=[HostSlot("localhost", 1)], env={"CP_VALUE": value}, mca=SEED_MCA).argv(cmd)
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root unless told twice
        env |= {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    done = subprocess.run(
        ["/bin/sh", "-c", render(argv)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"CP_VALUE": value, "argv": cmd.argv()[1:]}
