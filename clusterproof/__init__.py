"""clusterproof: acceptance and benchmark library for GPU instant clusters.

A plain library: it never imports pytest. The pytest layer lives in ``fixtures/`` and ``suites/``.
"""

__version__ = "0.1.0"
