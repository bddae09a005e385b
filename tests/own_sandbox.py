"""One sandbox per test module, on the module's own state directory, subnet and prefix, so modules never share a
namespace, a port or a fault.

``own_sandbox`` is what every sandbox test module's fixture does: take down what a killed earlier run of the same
module left (its own state directory, nothing else), bring the sandbox up, and take it down at the end, also when a
test fails. ``SANDBOX_MARKS`` are the marks those modules carry (root, the sandbox, skipped without root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clusterproof.cli import sandbox_down, sandbox_up
from clusterproof.sandbox import cluster

SANDBOX_MARKS = [
    pytest.mark.needs_root,
    pytest.mark.needs_sandbox,
    pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (network namespaces, one sshd per node)"),
]


@contextmanager
def own_sandbox(state_dir: Path, nodes: int = 4, **up: Any) -> Iterator[Path]:
    """Yields: the inventory of a fresh ``nodes``-node sandbox in ``state_dir`` (``up``: :func:`sandbox_up`'s keywords).
    Cleans up: the whole sandbox (sandbox_down), also when the body raises."""
    if cluster.read_state(state_dir) is not None:
        sandbox_down(state_dir)  # a killed earlier run of this module: ours to remove (our own state dir)
    inventory = sandbox_up(nodes, state_dir, **up)
    try:
        yield inventory
    finally:
        sandbox_down(state_dir)
