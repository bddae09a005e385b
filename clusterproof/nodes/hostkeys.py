"""A known_hosts file that is wrong on purpose, to prove that strict host-key checking refuses a node."""

from __future__ import annotations

import paramiko
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clusterproof.inventory import Node, SshSettings


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
