"""Root conftest: only loads the fixture plugins. Options, markers and hooks live in those modules."""

pytest_plugins = [
    "fixtures.inventory",
    "fixtures.report",
    "fixtures.findings",
    "fixtures.ssh",
    "fixtures.rdma",
    "fixtures.nccl",
    "fixtures.s3",
    "fixtures.unfit",
]
