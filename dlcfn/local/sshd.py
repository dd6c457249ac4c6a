"""Real OpenSSH server hosts on loopback addresses: the local stand-ins for cluster nodes.

Each host is a stock `/usr/sbin/sshd` listening on its own 127.x.y.z address and high port, with
its own host key, its own config and a root directory that sessions see as
`$DLCFN_NODE_ROOT` and as `$HOME` (server-side SetEnv), so hosts sharing one machine do not
share job dirs, and a session's shell starts like on a fresh node: it does not source the local
user's ~/.bashrc (bash does that for every command run by sshd; here root's pyenv set-up cost
~110 ms per command, more than the command itself).
The pool owns one user key pair, a known_hosts file holding every host key, a hosts file and an
ssh client config (for the `ssh` binary, e.g. MXNet's classic launcher).

Two departures from a node's sshd, both because every host shares this machine's CPUs: `-r`
(no re-exec per connection, see SshHostPool.reexec) and ECDSA keys (KEY_TYPE). AcceptEnv,
MaxSessions and the key exchange are stock.

Used by the tests, the benchmarks and the embedded local cluster. Every process a pool starts,
and every process started through its hosts, is stopped by `stop()`.
"""

from __future__ import annotations

import getpass
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dlcfn.errors import DlcfnError
from dlcfn.local.process import send

SSHD = "/usr/sbin/sshd"
# Host and user keys that OpenSSH signs and checks through OpenSSL: its own ed25519 is portable
# reference code, ~15% of a connection's server CPU here, and the hosts of a local cluster all
# share this machine's cores (see SshHostPool.reexec). Key exchange stays stock.
KEY_TYPE = ("ecdsa", "256")
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start as root without it
START_TIMEOUT = 10.0


@dataclass
class LocalSshHost:
    name: str  # "host1", ...
    address: str  # 127.x.y.z
    port: int
    dir: Path  # config, host key, log, pid file
    root: Path  # $DLCFN_NODE_ROOT in this host's sessions
    process: subprocess.Popen | None = None  # the sshd listener (-D: stays our child)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def host_key(self) -> Path:
        return self.dir / f"ssh_host_{KEY_TYPE[0]}_key"

    @property
    def spec(self) -> str:
        """`user@address:port`, a hosts-file line."""
        return f"{getpass.getuser()}@{self.address}:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SshHostPool:
    """A set of local sshd hosts under `base_dir` (must not sit below a group/world-writable
    directory such as /tmp: sshd's StrictModes, kept on, refuses keys there)."""

    base_dir: Path
    hosts: list[LocalSshHost] = field(default_factory=list)
    subnet: int = field(default_factory=lambda: random.randint(1, 254))  # 127.77.<subnet>.n: pools do not collide
    # PATH of every session, set by the server (a node image's software): the local cluster puts
    # dlcfn's own Python (with MXNet) first, as a Deep Learning AMI has its framework on PATH.
    session_path: str = ""
    # sshd re-executes itself for every connection (fresh address-space layout per connection),
    # which costs 15-20 ms of CPU each: on a real cluster every node pays that on its own CPUs,
    # but here all the hosts share this machine's cores, so a 64-host launch would pay ~1.3 s of
    # CPU that no real launch serializes. Local hosts therefore run `sshd -r` (no re-exec; they
    # listen on loopback only, with the pool's own key). reexec=True gives stock behaviour.
    reexec: bool = False
    _next: int = 1

    @property
    def user_key(self) -> Path:
        return self.base_dir / "client" / f"id_{KEY_TYPE[0]}"

    @property
    def known_hosts(self) -> Path:
        return self.base_dir / "client" / "known_hosts"

    @property
    def hosts_file(self) -> Path:
        return self.base_dir / "client" / "hosts"

    @property
    def ssh_config(self) -> Path:
        return self.base_dir / "client" / "ssh_config"

    def start(self, count: int) -> list[LocalSshHost]:
        """Create the client files and start `count` hosts; on failure stop what started."""
        _check_strict_modes_path(self.base_dir)
        (self.base_dir / "client").mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.base_dir, 0o700)
        if not self.user_key.exists():
            _keygen(self.user_key, "dlcfn-user")
        if os.geteuid() == 0:
            PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        try:
            started = [self._create_host() for _ in range(count)]
            for host in started:
                self._launch(host)
            for host in started:
                _wait_listening(host)
        except BaseException:
            self.stop()
            raise
        self.write_client_files()
        return started

    def add_host(self) -> LocalSshHost:
        host = self._create_host()
        try:
            self._launch(host)
            _wait_listening(host)
        except BaseException:
            self.remove_host(host)
            raise
        self.write_client_files()
        return host

    def remove_host(self, host: LocalSshHost) -> None:
        self._stop_hosts([host])
        self.hosts.remove(host)
        self.write_client_files()

    def sshd_pids(self, host: LocalSshHost) -> list[int]:
        """The host's listener and every sshd process below it (one or two per connection)."""
        if host.process is None or host.process.poll() is not None:
            return []
        return [host.process.pid, *(p for p in _descendants(host.process.pid) if _exe(p) == SSHD)]

    def kill_host(self, host: LocalSshHost) -> None:
        """Failure injection: SIGKILL the listener and every sshd session process below it, as
        when a machine's SSH side dies. Commands started through it lose their channels."""
        for pid in self.sshd_pids(host):
            send(pid, signal.SIGKILL)
        if host.process is not None:
            host.process.wait(timeout=5)

    def freeze_host(self, host: LocalSshHost) -> list[int]:
        """Failure injection: SIGSTOP the host's sshd processes: its TCP connections stay up but
        nothing answers, like a hung machine. Returns the pids for thaw_host."""
        pids = self.sshd_pids(host)
        for pid in pids:
            send(pid, signal.SIGSTOP)
        return pids

    def thaw_host(self, pids: list[int]) -> None:
        for pid in pids:
            send(pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop every host and every process started through them (found by DLCFN_NODE_ROOT)."""
        self._stop_hosts(list(self.hosts))

    def __enter__(self) -> "SshHostPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ------------------------------------------------------------------------

    def _create_host(self) -> LocalSshHost:
        n = self._next
        self._next += 1
        if n > 254:
            raise DlcfnError("a local host pool holds at most 254 hosts")
        address = f"127.77.{self.subnet}.{n}"
        hdir = self.base_dir / f"host{n}"
        root = hdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(hdir, 0o700)
        host = LocalSshHost(name=f"host{n}", address=address, port=_free_port(address), dir=hdir, root=root)
        _keygen(host.host_key, host.name)
        (hdir / "authorized_keys").write_text(Path(f"{self.user_key}.pub").read_text())
        os.chmod(hdir / "authorized_keys", 0o600)
        (hdir / "sshd_config").write_text(_sshd_config(host, self.session_path))
        self.hosts.append(host)
        return host

    def _launch(self, host: LocalSshHost) -> None:
        log = open(host.dir / "sshd.log", "ab")
        # -D: stay in the foreground as our child (we own its pid); -e would log to stderr,
        # -E keeps the log per host; -r: see `reexec`. New session: a Ctrl-C aimed at the caller must not reach it.
        flags = ["-D"] + ([] if self.reexec else ["-r"])
        host.process = subprocess.Popen([SSHD, *flags, "-f", str(host.dir / "sshd_config"), "-E", str(host.dir / "sshd.log")],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()

    def _stop_hosts(self, hosts: list[LocalSshHost]) -> None:
        running = [h.process for h in hosts if h.process is not None and h.process.poll() is None]
        for process in running:
            send(process.pid, signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                send(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        for pid in processes_with_env("DLCFN_NODE_ROOT", [str(h.root) for h in hosts]):
            send(pid, signal.SIGKILL)

    def write_client_files(self, hosts: list[LocalSshHost] | None = None) -> None:
        """known_hosts, hosts file and ssh client config for `hosts` (default: all of them)."""
        hosts = self.hosts if hosts is None else hosts
        keys = []
        for h in hosts:
            key_type, key_b64 = Path(f"{h.host_key}.pub").read_text().split()[:2]
            keys.append(f"[{h.address}]:{h.port} {key_type} {key_b64}\n")
        _write_private(self.known_hosts, "".join(keys))
        _write_private(self.hosts_file, "".join(f"{h.spec}\n" for h in hosts))
        config = "".join(
            f"Host {h.address}\n  Port {h.port}\n  User {getpass.getuser()}\n  IdentityFile {self.user_key}\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
            f"  BatchMode yes\n" for h in hosts
        )
        _write_private(self.ssh_config, config)


def _sshd_config(host: LocalSshHost, session_path: str = "") -> str:
    path = f" PATH={session_path}" if session_path else ""
    return f"""# dlcfn local host {host.name}: stock sshd, own address, key and root directory.
ListenAddress {host.address}
Port {host.port}
HostKey {host.host_key}
PidFile {host.dir}/sshd.pid
AuthorizedKeysFile {host.dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# PAM opens a login session per connection: slow, and not needed for key-only logins.
UsePAM no
StrictModes yes
# Sessions on this host keep their files under this directory instead of the machine's shared
# home (as on a separate node; bash then also skips the real home's ~/.bashrc).
SetEnv DLCFN_NODE_ROOT={host.root} HOME={host.root}{path}
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
"""


def processes_with_env(key: str, value: str | Iterable[str] | None = None) -> list[int]:
    """Pids whose environment holds `key` (= `value`, or any of the values, when given): how
    processes started through a host or belonging to a job are found, whatever their parent or
    session is now. One pass over /proc, however many values."""
    prefix = f"{key}=".encode()
    wanted = None if value is None else {prefix + v.encode() for v in ([value] if isinstance(value, str) else value)}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.startswith(prefix) and (wanted is None or item in wanted) for item in env):
            found.append(int(entry.name))
    return found


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _keygen(path: Path, comment: str) -> None:
    subprocess.run([SSH_KEYGEN, "-q", "-t", KEY_TYPE[0], "-b", KEY_TYPE[1], "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _wait_listening(host: LocalSshHost) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if host.process is not None and host.process.poll() is not None:
            log = (host.dir / "sshd.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise DlcfnError(f"sshd for {host.name} exited with {host.process.returncode}: {' | '.join(log)}")
        try:
            with socket.create_connection((host.address, host.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise DlcfnError(f"sshd for {host.name} did not listen on {host.address}:{host.port} within {START_TIMEOUT:.0f} s")


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, 0o600)


def _check_strict_modes_path(base: Path) -> None:
    """sshd (StrictModes) rejects an authorized_keys file below a group/world-writable directory."""
    for parent in [base.resolve(), *base.resolve().parents]:
        if parent.exists() and parent.stat().st_mode & 0o022:
            raise DlcfnError(f"local hosts directory {base} is below {parent}, which others can write; sshd would refuse its keys. "
                             "Use a directory under your home (e.g. ~/.dlcfn)")
