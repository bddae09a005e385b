"""The next run without the last run's unfit nodes: ``pytest --exclude-unfit reports/<run>``.

Reads ``unfit_nodes.txt`` (:data:`clusterproof.unfit.UNFIT_FILE`, one ``node<TAB>reasons`` a line) and drops those
nodes from the inventory; with a ``slurm:`` section they also go to ``srun --exclude`` (``slurm.exclude``), so a
step inside an allocation that holds them never lands there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from clusterproof.errors import InventoryError
from clusterproof.inventory import Inventory
from clusterproof.unfit import UNFIT_FILE


def read_unfit_file(path: str | Path) -> dict[str, str]:
    """Node -> reasons from ``unfit_nodes.txt`` (or a run directory holding one), in file order.

    Raises:
        InventoryError: naming the file: missing, unreadable, or a line that is not ``node<TAB>reasons``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / UNFIT_FILE
    try:
        text = p.read_text()
    except OSError as e:
        raise InventoryError(str(p), [f"--exclude-unfit: cannot read the exclude list: {e.strerror or e}"]) from None
    out: dict[str, str] = {}
    problems = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        node, tab, reasons = line.partition("\t")
        if not tab or not node.strip() or any(c.isspace() for c in node.strip()):
            problems.append(f"line {i}: expected 'node<TAB>reasons', got {line[:80]!r}")
            continue
        out[node.strip()] = reasons.strip()
    if problems:
        raise InventoryError(str(p), problems)
    return out


def exclude_nodes(inv: Inventory, names: list[str]) -> Inventory:
    """``inv`` without ``names`` (names the inventory does not have are ignored: the list may come from a larger
    run); with Slurm, the names are added to ``slurm.exclude`` for ``srun --exclude``.

    Raises:
        InventoryError: nothing would be left to test.
    """
    drop = set(names)
    kept = tuple(n for n in inv.nodes if n.name not in drop)
    if not kept:
        raise InventoryError(inv.source, [f"--exclude-unfit: excluding {', '.join(sorted(drop))} leaves no node to test"])
    slurm = inv.slurm
    if slurm is not None:
        slurm = replace(slurm, exclude=tuple(sorted(set(slurm.exclude) | (drop & {n.name for n in inv.nodes}))))
    return replace(inv, nodes=kept, slurm=slurm)
