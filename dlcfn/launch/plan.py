"""The plan: which process of a job runs on which host, under which name and rank.

Pure: hosts and a spec in, placements out. The scheduler goes on the first host; workers are
spread over the hosts first (round robin), then servers go to the least loaded hosts, so that a
job with as many hosts as processes puts one process per host.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dlcfn.remote.hosts import SshTarget
from dlcfn.spec.job import JobSpec


class Role(str, enum.Enum):
    SCHEDULER = "scheduler"
    SERVER = "server"
    WORKER = "worker"


@dataclass(frozen=True)
class HostSlot:
    """A host of the job: how to reach it, and the address its ranks advertise to each other."""

    target: SshTarget
    address: str  # numeric IP the other ranks connect to (DMLC_NODE_HOST, DMLC_PS_ROOT_URI)
    gpus: int | None = None  # known GPU count (from an inventory), None when unknown

    @property
    def name(self) -> str:
        return self.target.name


@dataclass
class Process:
    role: Role
    rank: int
    host: int  # index into Plan.hosts
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.role.value}-{self.rank}"


@dataclass
class Plan:
    job_id: str
    hosts: list[HostSlot]
    processes: list[Process]
    root_port: int = 0  # the scheduler's port, picked free on the first host at start

    def on_host(self, index: int) -> list[Process]:
        return [p for p in self.processes if p.host == index]

    @property
    def used_hosts(self) -> list[int]:
        return sorted({p.host for p in self.processes})

    def to_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "root_port": self.root_port,
            "hosts": [{"name": h.name, "address": h.address, "target": h.target.to_dict()} for h in self.hosts],
            "processes": [{"name": p.name, "role": p.role.value, "rank": p.rank, "host": self.hosts[p.host].name, "env": p.env}
                          for p in self.processes],
        }


def place(spec: JobSpec, num_hosts: int) -> list[Process]:
    """Placements for the spec's roles over `num_hosts` hosts (see the module docstring)."""
    load = [0] * num_hosts
    procs: list[Process] = []
    if spec.kvstore.distributed:
        procs.append(Process(Role.SCHEDULER, 0, 0))
    for rank in range(spec.num_workers):
        host = rank % num_hosts
        procs.append(Process(Role.WORKER, rank, host))
        load[host] += 1
    for rank in range(spec.num_servers):
        host = min(range(num_hosts), key=lambda h: (load[h], h))
        procs.append(Process(Role.SERVER, rank, host))
        load[host] += 1
    return procs


def make_plan(spec: JobSpec, hosts: list[HostSlot], job_id: str) -> Plan:
    return Plan(job_id=job_id, hosts=hosts, processes=place(spec, len(hosts)))
