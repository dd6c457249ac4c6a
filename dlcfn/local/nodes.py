"""Boot of a local cluster's nodes: what EC2, Auto Scaling notifications and Lambda do on AWS.

moto launches the instances but runs no UserData, delivers no Auto Scaling notifications and runs
no Lambda. So, per boot: the node config is read from the UserData moto rendered into each
launch template (the same config.json the node would get), the worker group's launches become
SNS events for the real ASG-monitor handler (dlcfn.node.asg_monitor), and the real bootstrap
(dlcfn.node.bootstrap) runs in-process for every node, with the node's local host root as its
root prefix, its instance id and host address as identity, the cluster's shared directory as the
EFS mount, no GPUs. moto's WaitConditionHandle has no URL: signals go to a SignalReceiver here,
and a FAILURE one fails the create with the node's reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from collections.abc import Iterator
import threading
from concurrent.futures import Future
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcfn.blueprint import names
from dlcfn.errors import DlcfnError
from dlcfn.inventory import MASTER, ClusterState
from dlcfn.local.cluster import LocalHosts
from dlcfn.progress import Progress, Update

DISCOVERY_TIMEOUT_S = 60.0
_CONFIG = re.compile(r"<<'DLCFN_CONFIG'[^\n]*\n(.*?)\nDLCFN_CONFIG\n", re.S)


@dataclass
class BootTarget:
    """Where the nodes' AWS lives (the cluster's moto server) and what they boot as."""

    endpoint_url: str
    region: str
    shared_dir: Path


@contextmanager
def _aws_env(target: BootTarget, extra: dict[str, str]) -> Iterator[None]:
    """The handler and the bootstrap build boto3 clients from the environment (as on a node):
    point them at the moto server for the duration of the boot, then restore."""
    values = {"AWS_ENDPOINT_URL": target.endpoint_url, "AWS_DEFAULT_REGION": target.region, "AWS_REGION": target.region,
              "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", **extra}
    saved = {k: os.environ.get(k) for k in [*values, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def boot(session: Any, state: ClusterState, hosts: LocalHosts, target: BootTarget, progress: Progress) -> None:
    """Run the ASG monitor and every node's bootstrap; raise DlcfnError on a FAILURE signal."""
    from dlcfn.node import asg_monitor, events
    from dlcfn.node.bootstrap import MASTER as B_MASTER, WORKER as B_WORKER

    physical = _physical_ids(session, state.stack_name)
    # A re-boot (update-stack) must not read an earlier boot's membership: empty both queues.
    for queue in (names.MASTER_QUEUE, names.WORKER_QUEUE):
        _drain_queue(session.client("sqs"), physical[queue])
    configs = {role: _node_config(session, physical[lt]) for role, lt in ((B_MASTER, names.MASTER_LAUNCH_TEMPLATE), (B_WORKER, names.WORKER_LAUNCH_TEMPLATE))}
    lambda_env = session.client("lambda").get_function_configuration(FunctionName=physical[names.ASG_MONITOR_FUNCTION]).get("Environment", {}).get("Variables", {})
    with events.SignalReceiver() as receiver, _aws_env(target, {**{k: str(v) for k, v in lambda_env.items()}, "WAIT_HANDLE_URL": receiver.url}):
        workers = [n for n in state.nodes if n.role != MASTER]
        # Workers boot first (they wait for the member list) in daemon threads: a Ctrl-C here must
        # not wait out their discovery timeout (a pool's threads are joined at exit).
        futures = [_start(_run_node, B_WORKER, configs[B_WORKER], n, hosts, target, receiver.url) for n in workers]
        group = physical[names.WORKER_GROUP]
        decisions = io.StringIO()  # the handler logs one JSON line per decision on stdout (CloudWatch on AWS)
        with redirect_stdout(decisions):
            for event in events.group_launch_events(session.client("autoscaling"), group):
                asg_monitor.handler(event, None)
        for line in decisions.getvalue().splitlines():
            progress.note(f"ASG monitor: {line}")
        master = next(n for n in state.nodes if n.role == MASTER)
        results = [_run_node(B_MASTER, configs[B_MASTER], master, hosts, target, receiver.url)]
        results += [f.result(timeout=DISCOVERY_TIMEOUT_S * 2) for f in futures]
        failures = [s.body.get("Reason", "") for s in receiver.signals if s.body.get("Status") == "FAILURE"]
    for node, result in zip([master, *workers], results):
        progress.update(Update(node.name, "bootstrap", "ok" if result.ok else "FAILED", result.reason or f"{len(result.members)} members"))
    if failures or not all(r.ok for r in results):
        # The master's reason names the missing nodes; a waiting worker's only says it waited.
        reason = results[0].reason if not results[0].ok else (failures[0] if failures else next(r.reason for r in results if not r.ok))
        raise DlcfnError(f"cluster {state.name!r}: WaitCondition FAILURE: {reason}")
    progress.note(f"WaitCondition: SUCCESS ({len(results)} nodes bootstrapped)")


def _start(fn: Any, *args: Any) -> Future:
    """Run fn(*args) in a daemon thread; its outcome in the returned future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # handed to the caller through the future
            future.set_exception(e)

    threading.Thread(target=run, name="local-node-boot", daemon=True).start()
    return future


def _run_node(role: str, raw_config: dict[str, Any], node: Any, hosts: LocalHosts, target: BootTarget, wait_url: str) -> Any:
    from dlcfn.node.bootstrap import Config, Seams, run_bootstrap

    record = hosts.hosts[node.instance_id]
    root = Path(record.root)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    etc_hosts = root / "etc" / "hosts"
    if not etc_hosts.exists():
        etc_hosts.write_text("127.0.0.1 localhost\n")
    config = Config.from_dict({**raw_config, "role": role, "wait_handle_url": wait_url, "root": str(root), "endpoint_url": target.endpoint_url,
                               "instance_id": node.instance_id, "private_ip": record.address, "discovery_timeout_s": DISCOVERY_TIMEOUT_S,
                               "poll_wait_s": 1, "master_visibility_s": 0, "credentials_timeout_s": 10})
    return run_bootstrap(config, Seams(gpu_count=lambda: 0, mount=_link_shared(target.shared_dir)))


def _link_shared(shared: Path) -> Any:
    def mount(file_system_id: str, mount_point: Path, region: str) -> None:
        """The EFS mount: the node's mount point becomes a link to the cluster's shared directory."""
        mount_point.parent.mkdir(parents=True, exist_ok=True)
        if mount_point.is_symlink() and mount_point.resolve() == shared.resolve():
            return
        mount_point.symlink_to(shared, target_is_directory=True)

    return mount


def _drain_queue(sqs: Any, url: str) -> None:
    """Receive and delete until empty (PurgeQueue is allowed once a minute per queue)."""
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def _physical_ids(session: Any, stack: str) -> dict[str, str]:
    cfn = session.client("cloudformation")
    out: dict[str, str] = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            if r.get("LogicalResourceId") and r.get("PhysicalResourceId"):
                out[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    return out


def _node_config(session: Any, launch_template_id: str) -> dict[str, Any]:
    """The config.json the role's UserData would write on the node."""
    versions = session.client("ec2").describe_launch_template_versions(LaunchTemplateId=launch_template_id)["LaunchTemplateVersions"]
    newest = max(versions, key=lambda v: v["VersionNumber"])
    script = base64.b64decode(newest["LaunchTemplateData"]["UserData"]).decode()
    found = _CONFIG.search(script)
    if found is None:
        raise DlcfnError(f"launch template {launch_template_id}: no node config in its UserData")
    return dict(json.loads(found.group(1)))
