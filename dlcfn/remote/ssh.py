"""The SSH CommandRunner (paramiko): one host, its connections, and the options they use.

Every socket option and paramiko argument below says why it is there. Connections are opened
once and reused for every command of a job; a host gets another connection only when the open
ones are at sshd's stock MaxSessions (10 sessions per connection).
"""

from __future__ import annotations

import errno
import functools
import select
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dlcfn.errors import DlcfnError, UserInputError
from dlcfn.remote.hosts import KnownHosts, SshTarget, read_known_hosts
from dlcfn.remote.runner import RunResult, StreamFn, with_env

if TYPE_CHECKING:
    import paramiko

CONNECT_TIMEOUT = 10.0  # seconds for TCP connect + SSH handshake + auth: a live host answers in ms
KEEPALIVE_INTERVAL = 2  # seconds between SSH keepalives: lets the transport notice a dead peer
TCP_KEEPIDLE = 2  # seconds idle before TCP keepalive probes, so an idle rank's link is checked
TCP_KEEPINTVL = 1
TCP_KEEPCNT = 3  # -> a silent peer is declared dead after ~5 s
TCP_USER_TIMEOUT_MS = 5000  # unacknowledged data for 5 s kills the socket (keepalive alone
# does not cover a link that dies while we are sending)
LIVENESS_INTERVAL = 1.0  # seconds between application-level pings (see SshRunner.start_liveness)
SESSIONS_PER_CONNECTION = 8  # stock sshd MaxSessions is 10; keep 2 spare for control commands


class HostUnreachable(DlcfnError):
    """The host did not answer, refused us, or the connection dropped."""


class _UnknownHostKey(Exception):
    """Raised by our RejectPolicy: the host's key is not in the known_hosts file."""


def _reject_policy() -> "paramiko.MissingHostKeyPolicy":
    import paramiko

    class Reject(paramiko.RejectPolicy):
        """RejectPolicy, with its own exception type so that no message text is matched."""

        def missing_host_key(self, client: "paramiko.SSHClient", hostname: str, key: "paramiko.PKey") -> None:
            raise _UnknownHostKey(hostname)

    return Reject()


def tuned_socket(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A TCP connection with the options that make SSH commands fast and failures visible."""
    sock = socket.create_connection((host, port), timeout=timeout)
    _tune(sock)
    return sock


def _tune(sock: socket.socket) -> None:
    # paramiko writes small packets (channel requests, window adjusts); without NODELAY each
    # round trip waits for Nagle + delayed ACK (~40 ms): commands run ~8x slower.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Kernel keepalive: notice a peer that vanished while the link is idle (ranks can be quiet).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, TCP_KEEPIDLE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, TCP_KEEPINTVL)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, TCP_KEEPCNT)
    # Keepalive does not fire while data is unacknowledged: bound that case too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS)


class EarlySockets:
    """TCP connections to the hosts, started (non-blocking, no threads) as soon as the hosts are
    known and handed to the SSH handshakes later. Each sshd forks and re-execs itself and loads
    its keys on accept, about a third of its cost per connection: with early sockets that
    happens while this process is still importing paramiko and checking its input, on the core
    it would otherwise leave idle. Only numeric addresses without a jump host qualify (no DNS
    lookup here); a connect that failed is simply not handed out, and the normal connect then
    reports the error. `close()` closes whatever was not taken."""

    def __init__(self, targets: "list[SshTarget]") -> None:
        import ipaddress

        self._socks: dict[tuple[str, int], socket.socket] = {}
        for t in targets:
            if t.jump is not None or (t.host, t.port) in self._socks:
                continue
            try:
                family = socket.AF_INET6 if ipaddress.ip_address(t.host).version == 6 else socket.AF_INET
            except ValueError:
                continue
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            if sock.connect_ex((t.host, t.port)) not in (0, errno.EINPROGRESS):
                sock.close()
                continue
            self._socks[(t.host, t.port)] = sock

    def take(self, target: SshTarget, timeout: float = CONNECT_TIMEOUT) -> socket.socket | None:
        sock = self._socks.pop((target.host, target.port), None)
        if sock is None:
            return None
        _, writable, _ = select.select([], [sock], [], timeout)
        if not writable or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            sock.close()
            return None
        sock.setblocking(True)
        sock.settimeout(timeout)
        _tune(sock)
        return sock

    def close(self) -> None:
        while self._socks:
            self._socks.popitem()[1].close()


@functools.cache
def _transport_class() -> type:
    """paramiko's Transport with the AES-GCM ciphers first. Its default, AES-CTR + HMAC, checks
    every packet's MAC with a byte-by-byte compare in Python: the largest single item in a
    64-host fan-out's client profile. An AEAD cipher's tag is checked inside `cryptography`.
    Servers without GCM (OpenSSH before 6.2) still get the rest of the list.

    Also: SSH_MSG_DEBUG (OpenSSH sends one per login, the key's options) is only formatted for
    the log when debug logging is on: paramiko escapes it byte by byte in Python either way."""
    import logging

    import paramiko

    class GcmFirst(paramiko.Transport):
        _preferred_ciphers = (
            "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
            *(c for c in paramiko.Transport._preferred_ciphers if "gcm" not in c),
        )

        def _parse_debug(self, m: "paramiko.Message") -> None:
            if self.logger.isEnabledFor(logging.DEBUG):
                super()._parse_debug(m)

    return GcmFirst


def load_key(path: str) -> "paramiko.PKey":
    import paramiko

    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError as e:
        raise UserInputError(f"--ssh-key: {path} does not exist") from e
    except (paramiko.SSHException, ValueError, OSError) as e:
        raise UserInputError(f"--ssh-key: {path} is not a usable unencrypted private key ({e.__class__.__name__})") from e


@dataclass
class _Conn:
    client: "paramiko.SSHClient"
    open_sessions: int = 0


@dataclass
class SshRunner:
    """CommandRunner over SSH to one target; thread-safe, connections opened lazily and reused."""

    target: SshTarget
    pkey: "paramiko.PKey"
    jump: "SshRunner | None" = None
    host_keys: KnownHosts | None = None  # the known_hosts index, shared by a fan-out
    early: EarlySockets | None = None  # may hold an already started TCP connection to the target
    _conns: list[_Conn] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_answer: float | None = None  # monotonic time of the last ping reply
    _closed: bool = False  # close() was called: never connect again

    @property
    def name(self) -> str:
        return self.target.name

    def connect(self) -> None:
        """Open the first connection now (fan-out calls this in parallel for every host)."""
        with self._lock:
            if not self._conns:
                self._conns.append(_Conn(self._open()))

    def _open(self) -> "paramiko.SSHClient":
        import paramiko

        t = self.target
        if self._closed:
            raise HostUnreachable(f"host {t.name}: connection closed")
        try:
            if self.jump is not None:
                # The private host is reached through the first host: a direct-tcpip channel on its
                # existing transport (no extra TCP connection, no agent forwarding, no ProxyCommand).
                sock = self.jump.transport().open_channel("direct-tcpip", (t.host, t.port), ("127.0.0.1", 0),
                                                          timeout=CONNECT_TIMEOUT)
            else:
                sock = (self.early and self.early.take(t)) or tuned_socket(t.host, t.port)
        except (OSError, paramiko.SSHException) as e:
            raise HostUnreachable(f"host {t.name}: cannot connect to {t.host}:{t.port} ({_why(e)})") from e
        client = paramiko.SSHClient()
        # Only the given known_hosts file: never the user's, never learn keys silently. Only this
        # host's entries are handed over (parsing the whole file per connection costs O(hosts^2)).
        known = self.host_keys if self.host_keys is not None else read_known_hosts(t.known_hosts)
        for key_type, key in (known.lookup(t.known_hosts_name) or {}).items():
            client.get_host_keys().add(t.known_hosts_name, key_type, key)
        client.set_missing_host_key_policy(_reject_policy())
        self._login(client, sock)
        transport = client.get_transport()
        assert transport is not None
        # Keeps idle links open through NAT/firewalls, and a failing send marks the transport dead
        # (it wants no reply, so it cannot tell a frozen host: see start_liveness).
        transport.set_keepalive(KEEPALIVE_INTERVAL)
        return client

    def _login(self, client: "paramiko.SSHClient", sock: object) -> None:
        """Handshake, host key check and key auth on `sock`; paramiko's errors become ours."""
        import paramiko

        t = self.target
        try:
            client.connect(
                t.host, port=t.port, username=t.user,
                pkey=self.pkey,  # loaded once per fan-out, not re-read and re-parsed per host
                sock=sock,  # ours: TCP_NODELAY/keepalive set, or the jump host's channel
                # every handshake stage bounded: a host that accepts TCP but never speaks SSH fails
                timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT,
                allow_agent=False,  # the given key only: an agent's keys make auth order unpredictable
                look_for_keys=False,  # ditto for ~/.ssh/id_*
                compress=False,  # loopback/VPC links are fast; compression costs CPU per byte
                transport_factory=_transport_class(),  # AES-GCM first (see there)
            )
        except paramiko.BadHostKeyException as e:
            client.close()
            raise UserInputError(f"host {t.name}: host key does not match {t.known_hosts} ({t.known_hosts_name}); "
                                 "if the host was rebuilt, replace its line after checking the new key") from e
        except paramiko.AuthenticationException as e:
            client.close()
            raise UserInputError(f"host {t.name}: {t.user}@{t.host} refused key {t.key_file}; check --ssh-key and the user") from e
        except _UnknownHostKey as e:
            client.close()
            raise UserInputError(f"host {t.name}: unknown host key for {t.known_hosts_name}; add it to {t.known_hosts}") from e
        except paramiko.SSHException as e:
            client.close()
            raise HostUnreachable(f"host {t.name}: SSH handshake failed ({_why(e)})") from e
        except OSError as e:
            client.close()
            raise HostUnreachable(f"host {t.name}: connection failed ({_why(e)})") from e

    def start_liveness(self) -> None:
        """Ping the host every second with an SSH global request that wants a reply, so that a
        host that stops answering is noticed (silent_for) even while TCP looks healthy: a frozen
        machine whose kernel still ACKs, a stuck sshd. paramiko's own keepalive wants no reply.
        The ping thread starts after the first interval (see start_liveness_all); silence counts
        from watch_liveness when that ran, else from now."""
        if self._last_answer is None:
            self._last_answer = time.monotonic()
        threading.Thread(target=self._liveness_loop, name=f"liveness-{self.name}", daemon=True).start()

    def _liveness_loop(self) -> None:
        import paramiko

        while True:
            # The handshake just proved the host alive; a ping comes one interval after the last answer.
            time.sleep(LIVENESS_INTERVAL)
            try:
                transport = self.transport()
                # OpenSSH answers an unknown request with a failure message: any answer is a sign of life.
                transport.global_request("keepalive@openssh.com", wait=True)
            except (DlcfnError, paramiko.SSHException, EOFError, OSError):
                return  # closed under us (the job is over) or the link died: silent_for() grows
            if not transport.is_active():
                return
            self._last_answer = time.monotonic()

    def watch_liveness(self) -> None:
        """Count silence from now on; the pings themselves start later (start_liveness)."""
        self._last_answer = time.monotonic()

    def silent_for(self) -> float:
        """Seconds since the host last answered a ping (0 when liveness is not being watched)."""
        return 0.0 if self._last_answer is None else time.monotonic() - self._last_answer

    def transport(self) -> "paramiko.Transport":
        self.connect()
        transport = self._conns[0].client.get_transport()
        if transport is None or not transport.is_active():
            raise HostUnreachable(f"host {self.name}: connection lost")
        return transport

    def _session(self) -> tuple["paramiko.Channel", _Conn]:
        import paramiko

        with self._lock:
            conn = next((c for c in self._conns if c.open_sessions < SESSIONS_PER_CONNECTION), None)
            if conn is None:
                conn = _Conn(self._open())
                self._conns.append(conn)
            conn.open_sessions += 1
        transport = conn.client.get_transport()
        try:
            if transport is None or not transport.is_active():
                raise paramiko.SSHException("connection lost")
            return transport.open_session(timeout=CONNECT_TIMEOUT), conn
        except (paramiko.SSHException, OSError, EOFError) as e:
            self._release(conn)
            raise HostUnreachable(f"host {self.name}: cannot open a session ({_why(e)})") from e

    def _release(self, conn: _Conn) -> None:
        with self._lock:
            conn.open_sessions -= 1

    def start(self, cmd: str, env: Mapping[str, str] | None = None) -> "SshProcess":
        chan, conn = self._session()
        chan.exec_command(with_env(cmd, env))
        return SshProcess(chan, lambda: self._release(conn))

    def run(self, cmd: str, env: Mapping[str, str] | None = None, timeout: float | None = None,
            stream: StreamFn | None = None, stdin: bytes | None = None) -> RunResult:
        proc = self.start(cmd, env)
        try:
            if stdin is not None:
                proc.chan.sendall(stdin)
            proc.chan.shutdown_write()  # EOF on the command's stdin
            err: list[bytes] = []
            reader = threading.Thread(target=lambda: err.append(_drain(proc.read_stderr)), daemon=True)
            reader.start()
            out = bytearray()
            proc.chan.settimeout(timeout)  # per read: a command silent for `timeout` s fails
            while chunk := _recv(proc, self.name):
                out += chunk
                if stream:
                    stream(chunk)
            status = proc.wait()
            reader.join(timeout=5)
            return RunResult(status, bytes(out), b"".join(err))
        finally:
            proc.close()

    def put(self, data: bytes, remote_path: str) -> None:
        import shlex

        r = self.run(f"cat > {shlex.quote(remote_path)}", stdin=data)
        if not r.ok:
            raise DlcfnError(f"host {self.name}: cannot write {remote_path}: {r.tail(1)}")

    def get(self, remote_path: str) -> bytes:
        import shlex

        r = self.run(f"cat {shlex.quote(remote_path)}")
        if not r.ok:
            raise DlcfnError(f"host {self.name}: cannot read {remote_path}: {r.tail(1)}")
        return r.stdout

    def close(self) -> None:
        """Close every connection; the runner is done: nothing reconnects it (a late liveness
        ping or a straggling thread gets HostUnreachable instead)."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for c in conns:
            c.client.close()


class SshProcess:
    """A command started on a channel; its stdin stays open so that closing it is a signal."""

    def __init__(self, chan: "paramiko.Channel", on_close) -> None:  # type: ignore[no-untyped-def]
        self.chan = chan
        self._on_close = on_close
        self._closed = False

    def send(self, data: bytes) -> None:
        try:
            self.chan.sendall(data)
        except (OSError, EOFError):
            pass  # the channel is gone: its reader reports the lost host

    def read_stdout(self) -> bytes:
        try:
            return self.chan.recv(65536)
        except (OSError, EOFError):
            return b""

    def read_stderr(self) -> bytes:
        try:
            return self.chan.recv_stderr(65536)
        except (OSError, EOFError):
            return b""

    def read(self) -> tuple[bytes, bytes] | None:
        """The next output from either stream, (stdout, stderr) with one or both non-empty;
        None once both are at EOF. One reader serves both streams: it sleeps in select() on the
        channel's event pipe, which paramiko signals for data on either and for EOF."""
        chan = self.chan
        try:
            while True:
                out = chan.recv(65536) if chan.recv_ready() else b""
                err = chan.recv_stderr(65536) if chan.recv_stderr_ready() else b""
                if out or err:
                    return out, err
                if chan.eof_received or chan.closed:
                    return None
                select.select([chan], [], [])
        except (OSError, EOFError, ValueError):
            return None

    def wait(self) -> int:
        """Exit status; -1 when the channel closed without one (the host or link went away)."""
        return self.chan.recv_exit_status()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.chan.close()
            self._on_close()


def _recv(proc: SshProcess, name: str) -> bytes:
    try:
        return proc.chan.recv(65536)
    except socket.timeout as e:
        raise DlcfnError(f"host {name}: command timed out") from e
    except (OSError, EOFError):
        return b""


def _drain(read) -> bytes:  # type: ignore[no-untyped-def]
    parts = []
    while chunk := read():
        parts.append(chunk)
    return b"".join(parts)


def _why(e: BaseException) -> str:
    return str(e) or e.__class__.__name__
