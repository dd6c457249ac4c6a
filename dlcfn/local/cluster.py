"""The local hosts of one embedded cluster, across CLI calls.

`dlcfn.local.sshd.SshHostPool` starts sshd hosts as children of the calling process; a local
cluster outlives that process (create-stack in one call, submit/update/delete in later ones). This
module records which host stands for which EC2 instance (`hosts.json` in the cluster's directory:
address, port, listener pid), rebuilds a pool from that record to add hosts, and stops hosts by
their recorded pid after checking that the pid is still that host's sshd (pid reuse).
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcfn.home import write_atomic
from dlcfn.local.process import alive, send, terminate
from dlcfn.local.sshd import LocalSshHost, SshHostPool, processes_with_env

HOSTS_FILE = "hosts.json"
STOP_GRACE_S = 5.0


@dataclass
class HostRecord:
    instance_id: str
    name: str
    address: str
    port: int
    dir: str
    root: str
    pid: int


@dataclass
class LocalHosts:
    """The cluster's hosts: instance id -> host, plus what rebuilding the pool needs."""

    base_dir: Path
    subnet: int = 0
    next_index: int = 1
    hosts: dict[str, HostRecord] = field(default_factory=dict)

    @property
    def record_file(self) -> Path:
        return self.base_dir / HOSTS_FILE

    @classmethod
    def load(cls, base_dir: Path) -> "LocalHosts":
        try:
            raw = json.loads((base_dir / HOSTS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return cls(base_dir=base_dir)
        hosts = {k: HostRecord(**v) for k, v in raw.get("hosts", {}).items()}
        return cls(base_dir=base_dir, subnet=int(raw["subnet"]), next_index=int(raw["next_index"]), hosts=hosts)

    def save(self) -> None:
        write_atomic(self.record_file, json.dumps({"subnet": self.subnet, "next_index": self.next_index,
                                                   "hosts": {k: asdict(v) for k, v in self.hosts.items()}}, indent=1, sort_keys=True))

    def pool(self) -> SshHostPool:
        """A pool holding the recorded hosts (not as its children: it only adds or lists them)."""
        pool = SshHostPool(self.base_dir, session_path=node_path())
        if self.subnet:
            pool.subnet = self.subnet
        pool._next = self.next_index
        pool.hosts = [LocalSshHost(r.name, r.address, r.port, Path(r.dir), Path(r.root)) for r in self.hosts.values()]
        return pool

    def add(self, instance_ids: list[str]) -> None:
        """Start one host per instance id; recorded as each one listens (a crash leaves a record
        that `stop_all` can use)."""
        pool = self.pool()
        self.subnet = pool.subnet
        if not self.hosts:
            started = pool.start(0)  # client key, dirs, privsep dir
            assert not started
        for instance_id in instance_ids:
            host = pool.add_host()
            assert host.process is not None
            self.hosts[instance_id] = HostRecord(instance_id, host.name, host.address, host.port, str(host.dir), str(host.root), host.process.pid)
            self.next_index = pool._next
            self.save()
            host.process = None  # it outlives this process; stopped by pid later

    def remove(self, instance_ids: list[str]) -> None:
        records = [r for r in (self.hosts.pop(i, None) for i in instance_ids) if r is not None]
        stop_hosts(records)
        if self.base_dir.exists():  # not when the cluster's directory is already gone (delete)
            self.save()
        pool = self.pool()
        if pool.hosts and pool.user_key.exists() and self.base_dir.exists():
            pool.write_client_files()

    def stop_all(self) -> None:
        self.remove(list(self.hosts))

    def pids(self) -> list[int]:
        return [r.pid for r in self.hosts.values() if _is_host_sshd(r)]


def stop_hosts(records: list[HostRecord]) -> None:
    """Stop the hosts' sshd (when the pid is still that host's sshd) and every process started
    through them (one pass over /proc for all of them)."""
    for record in records:
        if _is_host_sshd(record):
            terminate(record.pid, STOP_GRACE_S)
    if records:
        for pid in processes_with_env("DLCFN_NODE_ROOT", [r.root for r in records]):
            send(pid, signal.SIGKILL)


def _is_host_sshd(record: HostRecord) -> bool:
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    except OSError:
        return False
    # sshd rewrites its title ("sshd: /usr/sbin/sshd -D -f <config> ... [listener]"): match the config path in it.
    return f" -f {Path(record.dir) / 'sshd_config'} ".encode() in cmdline.replace(b"\0", b" ") and alive(record.pid)




def node_path() -> str:
    """PATH on the local nodes: the Python running dlcfn (it has MXNet) first, then the system's."""
    return f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
