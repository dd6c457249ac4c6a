"""Where a job runs: the hosts of a hosts file or of a cluster's inventory, as HostSlots, checked
(key readable, every host key known) before anything connects."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dlcfn.errors import UserInputError
from dlcfn.launch.plan import HostSlot
from dlcfn.remote.hosts import SshTarget, check_known_hosts, parse_hosts_file
from dlcfn.remote.ssh import EarlySockets


@dataclass(frozen=True)
class Targets:
    hosts: list[HostSlot]
    shared_dir: str = ""  # set when the hosts share a file system
    origin: str = ""  # "hosts file X" / "cluster X", for messages
    early: EarlySockets | None = None  # TCP connections already started; close() when not used
    python: str = ""  # the hosts' interpreter for jobs that name none ("": python3 on PATH)
    node_state: str = ""  # a file every host must hold "ready" in before a job starts ("": no check)
    cluster: str = ""  # the cluster's name when the hosts are a cluster's

    def close(self) -> None:
        if self.early is not None:
            self.early.close()


def _with_early_sockets(targets: list[SshTarget], check: Callable[[], Targets], early_connect: bool) -> Targets:
    """Start the TCP connections (see EarlySockets), then run the remaining checks; on a failed
    check they are closed again and nothing else has touched the hosts."""
    if not early_connect:
        return check()
    early = EarlySockets(targets)
    try:
        return dataclasses.replace(check(), early=early)
    except BaseException:
        early.close()
        raise


def from_hosts_file(hosts_file: Path, ssh_key: Path | None, known_hosts: Path | None, early_connect: bool = False) -> Targets:
    if ssh_key is None or known_hosts is None:
        missing = " and ".join(o for o, v in (("--ssh-key", ssh_key), ("--known-hosts", known_hosts)) if v is None)
        raise UserInputError(f"--hosts needs {missing}: the private key to log in with and the host keys to trust")
    _check_files(ssh_key, known_hosts)
    targets = parse_hosts_file(hosts_file, str(ssh_key), str(known_hosts))

    def check() -> Targets:
        _load_key(ssh_key)
        check_known_hosts(targets)
        return Targets([HostSlot(t, _numeric(t.host, t.name)) for t in targets], origin=f"hosts file {hosts_file}")

    return _with_early_sockets(targets, check, early_connect)


def from_cluster(name: str, early_connect: bool = False) -> Targets:
    """The master is the first host and the jump host; workers are reached through it at their
    private addresses (they have no public ones)."""
    from dlcfn.home import Home
    from dlcfn.inventory import load_state
    from dlcfn.launch.nodestate import node_state_file

    state = load_state(Home.from_env().state_file(name), name)
    master = state.master
    if master is None:
        raise UserInputError(f"cluster {name!r} has no master node in its inventory; check `dlcfn status {name}`")
    if not state.ssh_key or not state.known_hosts:
        raise UserInputError(f"cluster {name!r} has no ssh key or known_hosts recorded; re-run `dlcfn status {name}` to refresh it")
    _check_files(Path(state.ssh_key), Path(state.known_hosts))
    jump = SshTarget(master.name, master.public_ip or master.private_ip, master.ssh_port, state.ssh_user, state.ssh_key, state.known_hosts)
    slots = [HostSlot(jump, master.private_ip or jump.host, master.gpus)]
    for node in state.workers:
        if node.state and node.state != "running":
            continue
        t = SshTarget(node.name, node.private_ip, node.ssh_port, state.ssh_user, state.ssh_key, state.known_hosts, jump=jump)
        slots.append(HostSlot(t, node.private_ip, node.gpus))

    def check() -> Targets:
        _load_key(Path(state.ssh_key))
        check_known_hosts([s.target for s in slots])
        return Targets(slots, shared_dir=state.shared_dir, origin=f"cluster {name}", python=state.node_python,
                       node_state=node_state_file(state), cluster=name)

    return _with_early_sockets([jump], check, early_connect)  # the workers are reached through the jump host


def check_gpus(targets: Targets, gpus_per_worker: int, workers_per_host: dict[int, int]) -> None:
    for i, count in workers_per_host.items():
        have = targets.hosts[i].gpus
        if gpus_per_worker and have is not None and have < gpus_per_worker * count:
            raise UserInputError(f"gpus_per_worker: {count} workers x {gpus_per_worker} GPUs do not fit on {targets.hosts[i].name} "
                                 f"({have} GPUs); lower gpus_per_worker or num_workers")


def _check_files(ssh_key: Path, known_hosts: Path) -> None:
    for opt, path in (("--ssh-key", ssh_key), ("--known-hosts", known_hosts)):
        if not path.is_file():
            raise UserInputError(f"{opt}: {path} does not exist or is not a file")


def _load_key(path: Path) -> None:
    from dlcfn.remote.ssh import load_key

    load_key(str(path))


def _numeric(host: str, name: str) -> str:
    """The address ranks advertise must be numeric (ps-lite binds to it)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return socket.gethostbyname(host)
    except OSError as e:
        raise UserInputError(f"host {name}: {host!r} does not resolve; use its IP address in the hosts file") from e
