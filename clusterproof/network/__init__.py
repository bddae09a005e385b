"""Network domain: RoCE GID tables, the nccl-tests launchers and readers, NCCL debug logs, verdicts, localisation."""
