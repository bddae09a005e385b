"""Root conftest: only loads the fixture plugins. Options, markers and hooks live in those modules."""

pytest_plugins = [
    "fixtures.inventory",
    "fixtures.findings",
    "fixtures.report",
    "fixtures.ssh",
    "fixtures.rdma",
    "fixtures.nccl",
    "fixtures.slurm",
    "fixtures.s3",
    "fixtures.unfit",
    "fixtures.soak",
]
