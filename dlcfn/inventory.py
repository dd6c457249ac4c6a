"""A cluster's inventory: the record that `create-stack` / `status` write and `submit` reads.

It says which hosts exist, how to reach them over SSH (user, key, known host keys, the master
as jump host for private nodes) and where the shared file system is. The AWS provider builds it
from stack outputs, the worker group and EC2; the local provider from its local hosts. Stored as
JSON at `Home.state_file(name)`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcfn.errors import UserInputError
from dlcfn.home import write_atomic

MASTER = "master"
WORKER = "worker"


@dataclass
class Node:
    role: str  # MASTER or WORKER
    name: str  # "master", "worker-1", "worker-2", ... (stable order: by launch time, then id)
    instance_id: str
    instance_type: str = ""
    state: str = ""  # EC2 state name: pending, running, ...
    private_ip: str = ""
    public_ip: str = ""
    ssh_port: int = 22
    gpus: int = 0


@dataclass
class ClusterState:
    name: str
    provider: str  # "aws" or "local"
    region: str
    stack_name: str
    stack_status: str = ""
    endpoint_url: str = ""  # set for a moto server (local clusters, tests)
    ssh_user: str = "ubuntu"
    ssh_key: str = ""  # path to the private key file
    known_hosts: str = ""  # path to a known_hosts file holding every node's host key
    host_key_note: str = ""  # why some nodes' host keys are not in known_hosts ("" when all are)
    shared_dir: str = ""  # EFS mount point on the nodes (local: a shared directory)
    # The interpreter jobs run with on the nodes unless the job names one (the stack's framework
    # venv); "" (a state file from before it was recorded): python3 on PATH.
    node_python: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)

    @property
    def master(self) -> Node | None:
        return next((n for n in self.nodes if n.role == MASTER), None)

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == WORKER]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        names = ", ".join(n.name for n in self.nodes) or "none"
        raise UserInputError(f"--node: cluster {self.name!r} has no node {name!r}; nodes: {names}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClusterState":
        raw = json.loads(text)
        raw["nodes"] = [Node(**n) for n in raw.get("nodes", [])]
        return cls(**raw)


def save_state(path: Path, state: ClusterState) -> None:
    """Write atomically so a reader never sees half a file."""
    write_atomic(path, state.to_json())


def load_state(path: Path, name: str) -> ClusterState:
    if not path.exists():
        raise UserInputError(f"cluster {name!r} is not known here ({path} missing); create it with `dlcfn create-stack {name}` or see `dlcfn list`")
    return ClusterState.from_json(path.read_text())
