"""Build a cluster's inventory (`dlcfn.inventory.ClusterState`, provider "aws") from the stack's
outputs, its worker Auto Scaling group and EC2, and record the nodes' SSH host keys.

Node names are stable: "master", then "worker-1".."worker-N" in launch order (ties by instance id),
so that names already in use keep pointing at the same instance after a scale-up.

Host keys are checked, never blindly accepted: cloud-init prints each instance's host public keys
between `-----BEGIN SSH HOST KEY KEYS-----` markers on the console; those lines go to the cluster's
known_hosts file. Where the console has no such block (moto; an instance still booting) the state
says so in `host_key_note`, and `ssh`/`submit` refuse the node instead of trusting first use.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcfn.aws.session import AwsSession, aws_errors
from dlcfn.blueprint import names
from dlcfn.inventory import MASTER, WORKER, ClusterState, Node
from dlcfn.node.userdata import node_python

_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
_END = "-----END SSH HOST KEY KEYS-----"
_LIVE = ("pending", "running")  # instances that are (or become) part of the cluster


@dataclass(frozen=True)
class Access:
    """How the user reaches the nodes: fixed by create-stack, carried over by status/update."""

    ssh_user: str
    ssh_key: str
    known_hosts: Path


def build_state(session: AwsSession, stack: dict[str, Any], access: Access) -> ClusterState:
    name = stack["StackName"]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    with aws_errors(f"read the nodes of {name!r}"):
        master_id = outputs.get(names.O_MASTER_INSTANCE_ID) or _physical_id(session, name, names.MASTER_INSTANCE)
        worker_ids = _group_instances(session, name, outputs)
        instances = _describe(session, [i for i in [master_id, *worker_ids] if i])
    nodes: list[Node] = []
    if master_id in instances:
        nodes.append(_node(instances[master_id], MASTER, MASTER))
    workers = sorted((instances[i] for i in worker_ids if i in instances), key=lambda r: (r["LaunchTime"], r["InstanceId"]))
    nodes += [_node(raw, WORKER, f"{WORKER}-{n}") for n, raw in enumerate(workers, start=1)]
    return ClusterState(
        name=name,
        provider="aws",
        region=session.region,
        stack_name=name,
        stack_status=stack["StackStatus"],
        endpoint_url=session.target.endpoint_url,
        ssh_user=access.ssh_user,
        ssh_key=access.ssh_key,
        known_hosts=str(access.known_hosts),
        shared_dir="/shared",
        # A stack from before the framework parameters has neither: python3, as its nodes had.
        node_python=node_python(params.get(names.P_GPU_FRAMEWORK, ""), params.get(names.P_CPU_FRAMEWORK, "")),
        outputs=outputs,
        nodes=nodes,
    )


def _physical_id(session: AwsSession, stack: str, logical_id: str) -> str:
    # list_stack_resources rather than describe_stack_resource: moto's crashes on stacks holding
    # resource types it does not model, and one paged listing works the same on AWS.
    cfn = session.client("cloudformation")
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["LogicalResourceId"] == logical_id:
                return str(resource.get("PhysicalResourceId", ""))
    return ""


def _group_instances(session: AwsSession, stack: str, outputs: dict[str, str]) -> list[str]:
    # The stack resource is asked first: an update that replaces the group renames it.
    group = _physical_id(session, stack, names.WORKER_GROUP) or outputs.get(names.O_WORKER_GROUP, "")
    resp = session.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    groups = resp.get("AutoScalingGroups", [])
    if not groups:
        return []
    return [i["InstanceId"] for i in groups[0].get("Instances", []) if i.get("LifecycleState", "InService") != "Terminating"]


def _describe(session: AwsSession, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    ec2 = session.client("ec2")
    found: dict[str, dict[str, Any]] = {}
    for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids):
        for reservation in page["Reservations"]:
            for raw in reservation["Instances"]:
                if raw["State"]["Name"] in _LIVE:
                    found[raw["InstanceId"]] = raw
    return found


def _node(raw: dict[str, Any], role: str, name: str) -> Node:
    return Node(
        role=role,
        name=name,
        instance_id=raw["InstanceId"],
        instance_type=raw.get("InstanceType", ""),
        state=raw["State"]["Name"],
        private_ip=raw.get("PrivateIpAddress", "") or "",
        public_ip=raw.get("PublicIpAddress", "") or "",
    )


def parse_host_keys(console: str) -> list[str]:
    """The `type base64 [comment]` lines between the host key markers, comments dropped."""
    if _BEGIN not in console:
        return []
    block = console.split(_BEGIN, 1)[1].split(_END, 1)[0]
    keys = []
    for line in block.splitlines():
        parts = line.split()
        if len(parts) >= 2 and (parts[0].startswith("ssh-") or parts[0].startswith("ecdsa-")):
            keys.append(f"{parts[0]} {parts[1]}")
    return keys


def _decode(output: str) -> str:
    # EC2 returns the console base64-encoded; moto returns it as text.
    try:
        return base64.b64decode(output, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return output


def node_addresses(node: Node, extra: Iterable[str] = ()) -> list[str]:
    return [a for a in (node.private_ip, node.public_ip, *extra) if a]


def record_host_keys(session: AwsSession, state: ClusterState, cache: Path) -> list[str]:
    """Rewrite known_hosts for the current nodes; return the names of nodes without known keys.

    Keys are cached per instance id in `cache` (JSON): a console keeps only its latest output, so
    the keys read right after boot are the ones to keep; instances that are gone drop out, which
    matters because AWS reuses private IPs.
    """
    known: dict[str, list[str]] = json.loads(cache.read_text()) if cache.exists() else {}
    ec2 = session.client("ec2")
    lines: list[str] = []
    missing: list[str] = []
    master_dns = state.outputs.get(names.O_MASTER_PUBLIC_DNS, "")
    for node in state.nodes:
        if not known.get(node.instance_id):
            with aws_errors(f"read the console of {node.name}"):
                console = _decode(ec2.get_console_output(InstanceId=node.instance_id).get("Output", "") or "")
            known[node.instance_id] = parse_host_keys(console)
        if not known[node.instance_id]:
            missing.append(node.name)
            continue
        hosts = ",".join(node_addresses(node, [master_dns] if node.role == MASTER else []))
        lines += [f"{hosts} {key}" for key in known[node.instance_id]]
    current = {n.instance_id for n in state.nodes}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({k: v for k, v in known.items() if k in current and v}, indent=1, sort_keys=True))
    path = Path(state.known_hosts)
    path.write_text("".join(line + "\n" for line in lines))
    return missing


def known_host_addresses(path: Path) -> set[str]:
    """Every address that has at least one key in a known_hosts file."""
    if not path.exists():
        return set()
    found: set[str] = set()
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            found.update(line.split()[0].split(","))
    return found
