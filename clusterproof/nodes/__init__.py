"""Node domain: SSH fan-out to every node (paramiko) and the facts gathered in one round trip per node."""
