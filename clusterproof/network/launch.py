"""argv lists for launching nccl-tests with ``mpirun`` or ``srun``, and their quoting for the SSH boundary.

Commands stay lists until the very end: :func:`render` (``shlex.join``) is the only place they become a
string, so an env value with spaces or quotes reaches the program unchanged.

nccl-tests flags come out in :data:`DEFAULT_FLAG_ORDER` — the order of the project's seed command
(``-e 8G -n 200 -b 512M -f 2 -g 1``), then the flags the seed does not use — followed by ``extra_args``.
Pass ``flag_order`` to :class:`NcclTestsCommand` for another order.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clusterproof.fields import ENV_NAME_RE
from clusterproof.units import human_size, parse_size

_MCA_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_HOST_BAD = re.compile(r"[\s,:]")

#: nccl-tests flag order: the seed command's flags first, in its order, then the rest.
DEFAULT_FLAG_ORDER: tuple[str, ...] = ("-e", "-n", "-b", "-f", "-i", "-g", "-w", "-c", "-J")


def _check_env(env: Mapping[str, str], where: str) -> None:
    """Raise ValueError naming the variable when a name is not a shell identifier or a value is not text."""
    for name, value in env.items():
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise ValueError(
                f"{where}: env name {name!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )
        if not isinstance(value, str):
            raise ValueError(f"{where}: env {name} must be a string, got {type(value).__name__} {value!r}")
        if "\0" in value:
            raise ValueError(f"{where}: env {name} contains a NUL byte, which no argv can carry")


def _size_arg(value: int | str, field: str) -> str:
    """Render a size as nccl-tests reads it: strings as given (checked), ints in exact binary units."""
    try:
        parse_size(value)
    except ValueError as exc:
        raise ValueError(f"NcclTestsCommand.{field}: {exc}") from None
    return value.strip() if isinstance(value, str) else human_size(value)


def _positive(value: int | None, field: str, minimum: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class HostSlot:
    """One ``mpirun -H`` entry: ``host:slots``.

    Raises:
        ValueError: an empty host, a host with ``,``/``:``/whitespace, or slots < 1.
    """

    host: str
    slots: int

    def __post_init__(self) -> None:
        if not self.host or _HOST_BAD.search(self.host):
            raise ValueError(f"HostSlot.host: {self.host!r} is empty or contains ',', ':' or whitespace")
        _positive(self.slots, f"HostSlot({self.host}).slots")

    def __str__(self) -> str:
        return f"{self.host}:{self.slots}"


@dataclass(frozen=True)
class NcclTestsCommand:
    """A nccl-tests binary and its sweep flags.

    Flags: ``-b min_bytes``, ``-e max_bytes``, ``-f step_factor`` (or ``-i step_bytes``: when ``step_bytes``
    is set it wins and ``-f`` is left out, since nccl-tests ignores ``-i`` whenever a factor > 1 is given),
    ``-n iters``, ``-w warmup_iters``, ``-g gpus_per_rank``, ``-c check``, ``-J json_path``; None leaves a flag
    out (nccl-tests default). Sizes: strings are passed as written (``"8G"``), ints in exact binary units
    (``536870912`` -> ``512M``, ``1000`` -> ``1000``). ``flag_order`` lists every flag in output order.

    Raises:
        ValueError: a bad size, ``min_bytes > max_bytes``, a non-positive count, or a bad ``flag_order``.
    """

    binary: str
    min_bytes: int | str
    max_bytes: int | str
    step_factor: int | None = 2
    step_bytes: int | str | None = None
    iters: int | None = None
    warmup_iters: int | None = None
    gpus_per_rank: int | None = 1
    check: int | None = None
    extra_args: tuple[str, ...] = ()
    json_path: str | None = None
    flag_order: tuple[str, ...] = DEFAULT_FLAG_ORDER

    def __post_init__(self) -> None:
        if not self.binary or not self.binary.strip():
            raise ValueError("NcclTestsCommand.binary: empty")
        lo = _size_arg(self.min_bytes, "min_bytes")
        hi = _size_arg(self.max_bytes, "max_bytes")
        if parse_size(lo) > parse_size(hi):
            raise ValueError(f"NcclTestsCommand: min_bytes {lo} is larger than max_bytes {hi}")
        if self.step_bytes is not None:
            _size_arg(self.step_bytes, "step_bytes")
        _positive(self.step_factor, "NcclTestsCommand.step_factor")
        _positive(self.iters, "NcclTestsCommand.iters")
        _positive(self.warmup_iters, "NcclTestsCommand.warmup_iters", minimum=0)
        _positive(self.gpus_per_rank, "NcclTestsCommand.gpus_per_rank")
        _positive(self.check, "NcclTestsCommand.check", minimum=0)
        # Lists are accepted for convenience but stored as tuples so the command stays hashable.
        object.__setattr__(self, "extra_args", tuple(self.extra_args))
        object.__setattr__(self, "flag_order", tuple(self.flag_order))
        unknown = [f for f in self.flag_order if f not in DEFAULT_FLAG_ORDER]
        dupes = {f for f in self.flag_order if self.flag_order.count(f) > 1}
        missing = [f for f in DEFAULT_FLAG_ORDER if f not in self.flag_order]
        if unknown or dupes or missing:
            raise ValueError(
                f"NcclTestsCommand.flag_order must list each of {' '.join(DEFAULT_FLAG_ORDER)} once "
                f"(unknown: {unknown}, repeated: {sorted(dupes)}, missing: {missing})"
            )

    def flags(self) -> dict[str, str]:
        """Return the flags that are set, ``{"-b": "512M", ...}`` (order: :attr:`flag_order`)."""
        values: dict[str, str | None] = {
            "-b": _size_arg(self.min_bytes, "min_bytes"),
            "-e": _size_arg(self.max_bytes, "max_bytes"),
            "-f": str(self.step_factor) if self.step_factor is not None and self.step_bytes is None else None,
            "-i": _size_arg(self.step_bytes, "step_bytes") if self.step_bytes is not None else None,
            "-n": None if self.iters is None else str(self.iters),
            "-w": None if self.warmup_iters is None else str(self.warmup_iters),
            "-g": None if self.gpus_per_rank is None else str(self.gpus_per_rank),
            "-c": None if self.check is None else str(self.check),
            "-J": self.json_path,
        }
        return {flag: v for flag in self.flag_order if (v := values[flag]) is not None}

    def argv(self) -> list[str]:
        """Return ``[binary, flag, value, ..., *extra_args]``."""
        out = [self.binary]
        for flag, value in self.flags().items():
            out += [flag, value]
        return out + list(self.extra_args)


@dataclass(frozen=True)
class Mpirun:
    """An Open MPI ``mpirun`` launch: ``mpirun -H h:s,... [-np N] -x NAME=VALUE... -mca NAME VALUE...
    [extra_args] <binary> <flags>`` (env and mca in mapping order).

    Raises:
        ValueError: no hosts, a bad env name or value, a bad MCA name, or np < 1.
    """

    hosts: Sequence[HostSlot]
    env: Mapping[str, str]
    mca: Mapping[str, str]
    mpirun: str = "mpirun"
    np: int | None = None
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("Mpirun.hosts: empty")
        _check_env(self.env, "Mpirun")
        for name, value in self.mca.items():
            if not _MCA_NAME_RE.match(name):
                raise ValueError(f"Mpirun: MCA parameter name {name!r} is not [A-Za-z0-9_]+")
            if not isinstance(value, str) or not value or "\0" in value:
                raise ValueError(
                    f"Mpirun: MCA parameter {name} needs a non-empty string value, got {value!r}"
                )
        _positive(self.np, "Mpirun.np")

    def argv(self, cmd: NcclTestsCommand) -> list[str]:
        """Return the full argv list (nothing quoted: see :func:`render`)."""
        out = [self.mpirun, "-H", ",".join(str(h) for h in self.hosts)]
        if self.np is not None:
            out += ["-np", str(self.np)]
        for name, value in self.env.items():
            out += ["-x", f"{name}={value}"]
        for name, value in self.mca.items():
            out += ["-mca", name, value]
        return out + list(self.extra_args) + cmd.argv()


@dataclass(frozen=True)
class Srun:
    """A Slurm ``srun`` launch: ``srun -N n --ntasks-per-node=k --mpi=pmix [--nodelist=a,b]
    --export=ALL,NAME=VALUE,... [extra_args] <binary> <flags>``.

    ``--export`` is one comma-separated list, so a value containing a comma cannot be carried: that is a
    ValueError naming the variable (set it in the job's environment instead).

    Raises:
        ValueError: counts < 1, a bad env name or value, a comma in an env value, or a bad node name.
    """

    nodes: int
    ntasks_per_node: int
    env: Mapping[str, str]
    mpi: str = "pmix"
    nodelist: Sequence[str] | None = None
    srun: str = "srun"
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _positive(self.nodes, "Srun.nodes")
        _positive(self.ntasks_per_node, "Srun.ntasks_per_node")
        _check_env(self.env, "Srun")
        for name, value in self.env.items():
            if "," in value:
                raise ValueError(
                    f"Srun: env {name}={value!r} contains a comma, which srun --export cannot carry "
                    "(it separates variables); export it in the job environment instead"
                )
        if not self.mpi or _HOST_BAD.search(self.mpi):
            raise ValueError(f"Srun.mpi: {self.mpi!r} is not a plugin name")
        for node in self.nodelist or ():
            if not node or _HOST_BAD.search(node):
                raise ValueError(f"Srun.nodelist: {node!r} is empty or contains ',', ':' or whitespace")

    def argv(self, cmd: NcclTestsCommand) -> list[str]:
        """Return the full argv list (nothing quoted: see :func:`render`)."""
        out = [
            self.srun,
            "-N",
            str(self.nodes),
            f"--ntasks-per-node={self.ntasks_per_node}",
            f"--mpi={self.mpi}",
        ]
        if self.nodelist:
            out.append(f"--nodelist={','.join(self.nodelist)}")
        out.append(",".join(["--export=ALL", *(f"{k}={v}" for k, v in self.env.items())]))
        return out + list(self.extra_args) + cmd.argv()


def render(argv: Sequence[str]) -> str:
    """Return ``argv`` as one shell command line (``shlex.join``) for the SSH boundary.

    Raises:
        ValueError: an empty argv or an element with a NUL byte.
    """
    if not argv:
        raise ValueError("render: empty argv")
    for i, arg in enumerate(argv):
        if "\0" in arg:
            raise ValueError(f"render: argv[{i}] contains a NUL byte")
    return shlex.join(argv)
