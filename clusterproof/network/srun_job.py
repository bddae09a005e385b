"""What a collective launched with ``srun`` adds to the launch, and how it is cancelled.

Every srun step gets a job name carrying the run's job id (``--job-name=clusterproof-<job_id>``), labelled output
(``--label``: the ``0: `` tags the NCCL parsers strip), ``--kill-on-bad-exit=1`` (one failing rank ends the
step), a Slurm time limit one minute beyond the inventory's timeout (Slurm ends the step even if clusterproof
dies), and the inventory's partition, account, reservation, constraints and excluded nodes.

On a timeout or failure :func:`cancel_command` (run on the head node) ``scancel``\\ s every step and job of that
name -- inside an allocation the step is a step of the user's job, outside it srun made a job of its own -- and
waits until ``squeue`` lists neither, printing what is left (nothing, when all went well).

MPI plugin: Debian 12's OpenMPI 4.1.4 is built against PMIx (``pmix: ext3x``) and without Slurm's PMI-2
library, so ``--mpi=pmix`` works and ``--mpi=pmi2`` fails in ``MPI_Init`` ("OMPI was not built with SLURM's PMI
support"; ``tests/data/slurm/sandbox_srun_mpi-pmi2_openmpi-4.1.4.txt``). Slurm 22.05 offers both (``srun
--mpi=list``: pmix, pmix_v4, pmi2, cray_shasta, none). ``slurm.mpi`` picks one; the default is pmix.
"""

from __future__ import annotations

import math
import shlex

from clusterproof.slurm_settings import SlurmSettings

JOB_NAME_PREFIX = "clusterproof-"


def job_name(job_id: str) -> str:
    return f"{JOB_NAME_PREFIX}{job_id}"


def srun_job_options(slurm: SlurmSettings | None, job_id: str | None, timeout_s: float) -> list[str]:
    """The srun options of one collective step (see the module docstring)."""
    out = ["--label", "--kill-on-bad-exit=1", f"--time={math.ceil(timeout_s / 60) + 1}"]
    if job_id:
        out.append(f"--job-name={job_name(job_id)}")
    return out + (slurm.srun_options() if slurm else [])


def cancel_command(job_id: str, wait_s: float = 15.0) -> str:
    """Shell code for the head node: scancel the steps and jobs named after ``job_id``, wait until squeue shows none,
    then print ``cancelled: <ids>`` and, if anything is still listed, ``left: <ids>``."""
    name = shlex.quote(job_name(job_id))
    tries = max(1, int(wait_s / 0.25))
    listed = (f"{{ squeue -h -s -o '%i %j' 2>/dev/null; squeue -h -o '%i %j' 2>/dev/null; }} "
              f"| awk -v n={name} '$2==n{{print $1}}' | sort -u | tr '\\n' ' '")
    return (f"ids=$({listed}); [ -n \"$ids\" ] && scancel $ids 2>/dev/null; scancel --name={name} 2>/dev/null; "
            f"i=0; left=$({listed}); while [ -n \"$left\" ] && [ $i -lt {tries} ]; do sleep 0.25; i=$((i+1)); left=$({listed}); done; "
            f"echo \"cancelled: $ids\"; [ -z \"$left\" ] || echo \"left: $left\"; true")
