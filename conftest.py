"""Root conftest: only loads the fixture plugins. Options, markers and hooks live in those modules."""

pytest_plugins = [
    "fixtures.inventory",
    "fixtures.findings",
    "fixtures.report",
    "fixtures.ssh",
    "fixtures.rdma",
    "fixtures.nccl",
    "fixtures.health",
    "fixtures.slurm",
    "fixtures.storage_gate",  # before fixtures.s3, which imports it
    "fixtures.s3",
    "fixtures.unfit",
    "fixtures.soak",
]
