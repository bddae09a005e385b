"""A known_hosts file that is wrong on purpose, to prove that strict host-key checking refuses a node."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clusterproof import findings as fd
from clusterproof.errors import NodeUnreachable
from clusterproof.findings import Criterion, Finding, node_subject
from clusterproof.inventory import Node, SshSettings
from clusterproof.nodes.ssh import SshPool


def _names(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def wrong_known_hosts(node: Node, settings: SshSettings) -> str:
    """known_hosts text that pins ``node`` (and the jump host, with its real key, when there is one) to a
    freshly generated Ed25519 and ECDSA key the node cannot have (a node with only an RSA host key is
then refused as "not in known_hosts", which proves the same). Lines for the jump host are copied from the inventory's
    known_hosts so that only the node itself can be refused.
    """
    lines = []
    for private in (ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())):
        public = private.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
        lines.append(f"{_names(node.host, node.port)} {public}")
    jump = settings.jump_host
    if jump is not None and settings.known_hosts is not None:
        keys = paramiko.HostKeys(str(settings.known_hosts))
        entry = keys.lookup(_names(jump.host, jump.port))
        for kind, key in (entry or {}).items():
            lines.append(f"{_names(jump.host, jump.port)} {kind} {key.get_base64()}")
    return "\n".join(lines) + "\n"


def prove_host_key_refused(node: Node, settings: SshSettings, workdir: Path) -> list[Finding]:
    """Connect to ``node`` with a known_hosts that holds a wrong key for it: strict checking must refuse it, naming
    the node and its host key. Proves the setting instead of reading it (``Criterion.STRICT_HOST_KEYS``)."""
    subject = node_subject(node.name)
    if not settings.strict_host_keys:
        return [fd.failed(Criterion.STRICT_HOST_KEYS, subject, f"{node.name}: ssh.strict_host_keys is false: a wrong "
                          "host key would be accepted")]
    known = workdir / f"known_hosts.wrong-{node.name}"
    known.write_text(wrong_known_hosts(node, settings))
    try:
        with SshPool([node], dataclasses.replace(settings, known_hosts=known)) as pool:
            pool.connect(node.name)
    except NodeUnreachable as e:
        if "host key mismatch" in e.reason or "host key not in known_hosts" in e.reason:
            return [fd.passed(Criterion.STRICT_HOST_KEYS, subject, f"{node.name}: a wrong known_hosts key is refused ({e.reason[:80]}...)")]
        return [fd.not_tested(Criterion.STRICT_HOST_KEYS, subject, f"{node.name}: could not get as far as the host key: {e}")]
    finally:
        known.unlink(missing_ok=True)
    return [fd.failed(Criterion.STRICT_HOST_KEYS, subject, f"{node.name}: connected although known_hosts holds a different "
                      f"key for {node.host}: host keys are not checked")]
