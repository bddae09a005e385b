"""Opening SSH connections for :class:`clusterproof.nodes.ssh.SshPool`: credentials, host keys, auth, jump host.

:class:`Connector` turns (host, port, user, optional jump-host transport) into an authenticated,
host-key-checked ``paramiko.Transport`` on a low-latency socket. The guarantees (strict host keys, why
``TCP_NODELAY``/``TCP_QUICKACK`` are set, credentials loaded once) are described in :mod:`clusterproof.nodes.ssh`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import paramiko

from clusterproof.errors import NodeUnreachable
from clusterproof.inventory import SshSettings

# The logger keeps the name it had before this code moved out of clusterproof.nodes.ssh, so log filters still match.
log = logging.getLogger("clusterproof.nodes.ssh")
# paramiko's transport thread logs every failed handshake as ERROR with a traceback (a hung sshd gives ~20 lines
# per node in every failing test's captured log). Each of those failures is raised here as the node's own
# NodeUnreachable with the step, so the duplicate is dropped; paramiko's DEBUG/INFO stay available.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


class _LowLatencySocket:
    """A TCP socket with Nagle off and delayed ACKs suppressed; everything else is the wrapped socket.

    ``TCP_QUICKACK`` is not sticky (the kernel drops back to delayed ACKs), so it is re-armed before and
    after every ``recv``. paramiko's packetizer only calls ``recv``/``send``/``settimeout``/``close``.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack: int | None = getattr(socket, "TCP_QUICKACK", None)

    def _rearm(self) -> None:
        if self._quickack is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:  # the socket is closing; the next recv reports it
                pass

    def recv(self, size: int) -> bytes:
        self._rearm()
        data = self._sock.recv(size)
        self._rearm()
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class Connector:
    """Opens authenticated, host-key-checked transports with the pool's settings.

    known_hosts is parsed and the key file loaded once, on first use, and shared by every connection;
    a failure there is remembered and reported by every node (so fan-out shows it per node).
    """

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._setup_lock = threading.Lock()
        self._credentials_loaded = False
        self._credential_error: str | None = None
        self._host_keys = paramiko.HostKeys()
        self._pkey: paramiko.PKey | None = None
        self.unverified_hosts: list[str] = []

    def _load(self) -> None:
        """Parse known_hosts and load the key file once; remember a failure so every node reports it."""
        with self._setup_lock:
            if self._credentials_loaded:
                return
            s = self.settings
            try:
                if s.known_hosts is not None:
                    try:
                        self._host_keys.load(os.fspath(s.known_hosts))
                    except OSError as e:
                        raise _CredentialError(f"cannot read known_hosts {s.known_hosts}: {e.strerror or e}") from e
                if s.key_file is not None:
                    try:
                        self._pkey = _load_key(s.key_file)
                    except _EncryptedKey as e:
                        if not s.use_agent:
                            raise
                        log.info("%s; trying the agent's keys only", e)
            except _CredentialError as e:
                self._credential_error = str(e)
            self._credentials_loaded = True

    def _open_socket(self, label: str, host: str, port: int, via: paramiko.Transport | None) -> Any:
        timeout = self.settings.connect_timeout_s
        if via is not None:
            try:
                return via.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)
            except paramiko.ChannelException as e:
                raise NodeUnreachable(label, f"the jump host could not connect to {host}:{port} ({e.text}) (step: tunnel)") from None
            except (paramiko.SSHException, EOFError, OSError) as e:
                raise NodeUnreachable(
                    label, f"lost the jump host while opening a tunnel to {host}:{port} (step: tunnel, {timeout:g}s): {e or type(e).__name__}"
                ) from None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.gaierror as e:
            raise NodeUnreachable(label, f"cannot resolve host name {host!r}: {e.strerror or e}") from None
        except ConnectionRefusedError:
            raise NodeUnreachable(label, f"connection refused at {host}:{port}") from None
        except TimeoutError:
            raise NodeUnreachable(label, f"timed out after {timeout:g}s connecting to {host}:{port} (step: connect)") from None
        except OSError as e:
            raise NodeUnreachable(label, f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        return _LowLatencySocket(sock)

    def open(self, label: str, host: str, port: int, user: str, via: paramiko.Transport | None) -> paramiko.Transport:
        """Connect, verify the host key and authenticate; returns an authenticated transport."""
        self._load()
        if self._credential_error:
            raise NodeUnreachable(label, self._credential_error)
        sock = self._open_socket(label, host, port, via)
        timeout = self.settings.connect_timeout_s
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
            transport.channel_timeout = timeout
            known = self._host_keys.lookup(_known_hosts_name(host, port))
            if known:
                _prefer_host_key_type(transport, known.keys()[0])
            _handshake(label, transport, host, port, timeout)
            try:
                server_key = transport.get_remote_server_key()
            except (paramiko.SSHException, EOFError, OSError) as e:  # the session died between the two steps
                raise NodeUnreachable(label, f"SSH host-key check with {host}:{port} failed (step: host key): {e}") from None
            self._verify_host_key(label, host, port, server_key, known)
            try:
                self._authenticate(label, transport, user)
            except (paramiko.SSHException, EOFError, OSError) as e:  # timeouts and lost connections, not refusals
                raise NodeUnreachable(label, f"SSH authentication with {host}:{port} failed (step: auth): {e or type(e).__name__}") from None
        except BaseException:
            transport.close()
            raise
        return transport

    def _verify_host_key(self, label: str, host: str, port: int, key: paramiko.PKey, known: Any) -> None:
        name = _known_hosts_name(host, port)
        path = self.settings.known_hosts
        if not known:
            if self.settings.strict_host_keys:
                raise NodeUnreachable(
                    label, f"host key not in known_hosts {path} (strict host keys): no {key.get_name()} key for {name}, server offers {key.fingerprint}"
                )
            log.warning("%s: accepting UNVERIFIED host key %s %s for %s (strict_host_keys is false)", label, key.get_name(), key.fingerprint, name)
            with self._setup_lock:
                self.unverified_hosts.append(name)
            return
        ours = known.get(key.get_name())
        if ours != key:
            have = ", ".join(f"{k.get_name()} {k.fingerprint}" for k in known.values())
            raise NodeUnreachable(
                label, f"host key mismatch for {name}: server offers {key.get_name()} {key.fingerprint}, known_hosts {path} has {have}"
            )

    def _authenticate(self, label: str, transport: paramiko.Transport, user: str) -> None:
        tried: list[str] = []
        if self._pkey is not None:
            try:
                transport.auth_publickey(user, self._pkey)
                return
            except paramiko.AuthenticationException:
                tried.append(f"key {self.settings.key_file}")
        if self.settings.use_agent:
            agent = paramiko.Agent()
            try:
                keys = agent.get_keys()
                for key in keys:
                    try:
                        transport.auth_publickey(user, key)
                        return
                    except paramiko.AuthenticationException:
                        pass
                tried.append(f"{len(keys)} agent key(s)" if keys else "the agent (no keys; is SSH_AUTH_SOCK set?)")
            finally:
                agent.close()
        raise NodeUnreachable(label, f"authentication failed for user {user} with {' and '.join(tried) or 'no credentials'}")


class _CredentialError(Exception):
    pass


class _EncryptedKey(_CredentialError):
    """The key file needs a passphrase; fine when the agent holds the key."""


def _load_key(path: Path) -> paramiko.PKey:
    """Load an ed25519/ecdsa/rsa private key (OpenSSH or PEM format)."""
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise _CredentialError(f"key file {path} does not exist") from None
    except PermissionError:
        raise _CredentialError(f"key file {path} is not readable (permission denied)") from None
    except IsADirectoryError:
        raise _CredentialError(f"key file {path} is a directory") from None
    except paramiko.PasswordRequiredException:
        raise _EncryptedKey(f"key file {path} is encrypted; load it into an agent and set ssh.use_agent") from None
    except TypeError as e:  # cryptography's answer for an encrypted OpenSSH-format key without a password
        if "password" in str(e).lower():
            raise _EncryptedKey(f"key file {path} is encrypted; load it into an agent and set ssh.use_agent") from None
        raise _CredentialError(f"key file {path} is not a usable private key: {e}") from None
    except (paramiko.SSHException, ValueError, OSError) as e:
        raise _CredentialError(f"key file {path} is not a usable private key: {e}") from None


def _handshake(label: str, transport: paramiko.Transport, host: str, port: int, timeout: float) -> None:
    """Banner and key exchange, each within ``timeout``; every way it can go wrong is the node's NodeUnreachable.

    ``Transport.start_client(timeout=...)`` returns *silently* when its deadline passes before the key exchange
    finished (a stopped sshd accepts the TCP connection and never answers), so completion is checked here
    rather than assumed: the next call would otherwise raise a bare ``SSHException: No existing session``.
    The wait is banner + key exchange deadlines; the transport's own ``banner_timeout`` usually fires first.
    """
    where = f"{host}:{port}"
    hung = f"timed out after {timeout:g}s waiting for the SSH banner from {where} (step: banner; sshd hung?)"
    try:
        transport.start_client(timeout=2 * timeout)
    except (paramiko.SSHException, EOFError, OSError) as e:
        text = str(e) or type(e).__name__
        if not transport.remote_version:
            silent = text.endswith("banner") or "timed out" in text or "timeout" in text.lower()
            raise NodeUnreachable(label, hung if silent else f"SSH handshake with {where} failed (step: banner): {text}") from None
        raise NodeUnreachable(label, f"SSH handshake with {where} failed (step: key exchange): {text}") from None
    if getattr(transport, "initial_kex_done", False) and transport.is_active():
        return
    if not transport.remote_version:
        raise NodeUnreachable(label, hung)
    raise NodeUnreachable(label, f"timed out after {2 * timeout:g}s in the SSH key exchange with {where} (step: key exchange)")


def _prefer_host_key_type(transport: paramiko.Transport, keytype: str) -> None:
    """Ask the server for the key type known_hosts has, so that a node with several host keys verifies."""
    options = transport.get_security_options()
    if keytype == "ssh-rsa":
        keytype = next((k for k in ("rsa-sha2-512", "rsa-sha2-256") if k in options.key_types), keytype)
    if keytype in options.key_types:
        options.key_types = [keytype] + [k for k in options.key_types if k != keytype]
