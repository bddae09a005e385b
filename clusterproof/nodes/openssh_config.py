"""An OpenSSH client config equivalent to an inventory's ``ssh`` settings, for tools that shell out to ``ssh``
(pdsh, the by-hand side of the benchmarks, an engineer reproducing a failure).

Node names become ``Host`` aliases; key, known_hosts, strict host keys and the jump host come from the
inventory. The jump host gets its own block *before* ``Host *`` with ``ProxyJump none``: OpenSSH takes the
first value it meets, so without it the ``ProxyJump`` under ``Host *`` applies to the bastion too and the
connection loops through itself.
"""

from __future__ import annotations

from clusterproof.inventory import Inventory


def openssh_config(inv: Inventory) -> str:
    """The config text (pass it with ``ssh -F``)."""
    s = inv.ssh
    lines: list[str] = []
    for n in inv.nodes:
        lines += [f"Host {n.name}", f"    HostName {n.host}", f"    Port {n.port}", f"    User {n.user}"]
    if s.jump_host is not None:
        j = s.jump_host
        lines += [f"Host {j.host}", f"    Port {j.port}", f"    User {j.user or s.user}", "    ProxyJump none"]
    lines += ["Host *", "    BatchMode yes", f"    ConnectTimeout {max(1, int(s.connect_timeout_s))}", "    LogLevel ERROR"]
    lines += ["    ControlMaster no", "    ControlPath none"]
    if s.key_file is not None:
        lines += [f"    IdentityFile {s.key_file}"]
        if not s.use_agent:
            lines += ["    IdentitiesOnly yes"]
    if s.known_hosts is not None:
        lines += [f"    UserKnownHostsFile {s.known_hosts}", "    GlobalKnownHostsFile /dev/null"]
    lines += [f"    StrictHostKeyChecking {'yes' if s.strict_host_keys else 'no'}"]
    if s.jump_host is not None:
        j = s.jump_host
        lines += [f"    ProxyJump {j.user or s.user}@{j.host}:{j.port}"]
    return "\n".join(lines) + "\n"
