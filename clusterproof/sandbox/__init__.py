"""The sandbox cluster (network namespaces + sshd per node + a CPU stand-in for nccl-tests) and its faults.

Only ``clusterproof/cli.py`` and ``tests/`` import this package; the suites never do.
"""

from clusterproof.sandbox.cluster import DEFAULT_STATE_DIR, down, status, up
from clusterproof.sandbox.state import SandboxCluster, SandboxNode

__all__ = ["DEFAULT_STATE_DIR", "SandboxCluster", "SandboxNode", "down", "status", "up"]
