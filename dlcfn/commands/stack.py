"""CLI commands of the stack lifecycle: create-stack, status, list, update-stack, delete-stack, ssh.

Each command validates its input (all findings at once, before any AWS call), asks the provider
(dlcfn.provider: AWS, or the embedded local cluster with --local) to do one thing, and renders the
result: human tables on stdout, or JSON with --json. Progress goes to stderr (dlcfn.progress).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dlcfn.errors import DlcfnError, UserInputError, ValidationFailed
from dlcfn.home import Home
from dlcfn.inventory import ClusterState, load_state

def _aws_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--region", help="AWS region (default: AWS_REGION or your profile's region).")(f)
    f = click.option("--profile", help="AWS profile from ~/.aws/config (default: boto3's chain).")(f)
    return f


# The cluster spec's flags (dlcfn.spec.cluster.FLAGS names them; --region is an AWS option above).
# Values stay strings (or None when not given) so that the spec reports bad ones by flag name.
_SPEC_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--workers", {"metavar": "N", "help": "Number of workers (1-1000)."}),
    ("--min-workers", {"metavar": "N", "help": "Workers that must come up for the stack to succeed (default: all)."}),
    ("--worker-type", {"metavar": "TYPE", "help": "Worker instance type, e.g. g5.xlarge, p3.2xlarge."}),
    ("--master-type", {"metavar": "TYPE", "help": "Master instance type."}),
    ("--key-name", {"metavar": "NAME", "help": "EC2 key pair for SSH (required)."}),
    ("--ssh-cidr", {"metavar": "CIDR", "help": "CIDR allowed to SSH to the master, e.g. 203.0.113.7/32 (nothing is open by default)."}),
    ("--availability-zone", {"help": "Zone for the subnets (default: the region's first)."}),
    ("--vpc-id", {"help": "Bring your own VPC (with both subnet ids)."}),
    ("--public-subnet-id", {"help": "Your public subnet, for the master."}),
    ("--private-subnet-id", {"help": "Your private subnet, for the workers."}),
    ("--efs-id", {"help": "Reuse an existing EFS file system."}),
    ("--efs-performance-mode", {"help": "generalPurpose or maxIO (new file system only)."}),
    ("--root-volume-gb", {"metavar": "GB", "help": "Root volume size of every node, GiB."}),
    ("--image-id", {"help": "AMI id (default: the Deep Learning AMI from SSM)."}),
    ("--ami-ssm-parameter", {"help": "SSM parameter that holds the AMI id."}),
    ("--wait-timeout", {"metavar": "SECONDS", "help": "Seconds the stack waits for the cluster-ready signal."}),
    ("--gpu-framework-packages", {"metavar": "REQS", "help": "pip requirements GPU nodes install at boot, space-separated ('' for none)."}),
    ("--cpu-framework-packages", {"metavar": "REQS", "help": "pip requirements nodes without GPUs install at boot ('' for none)."}),
    ("--spot", {"is_flag": True, "default": None, "help": "Spot workers."}),
    ("--placement-group", {"is_flag": True, "default": None, "help": "Workers in a cluster placement group."}),
]


def _spec_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for flag, kwargs in reversed(_SPEC_FLAGS):
        f = click.option(flag, **kwargs)(f)
    return f


def _build_spec(name: str, region: str | None, options: dict[str, Any], config: Path | None, *, require_key_name: bool,
                local: bool = False) -> Any:
    """Validate the name and the cluster spec (flags over cluster.yaml) together: every finding."""
    from dlcfn.aws.stack import check_stack_name
    from dlcfn.spec.cluster import cluster_spec_from_options

    findings = check_stack_name(name)
    try:
        spec = cluster_spec_from_options({**options, "region": region}, config, require_key_name=require_key_name, local=local)
    except ValidationFailed as e:
        raise ValidationFailed(findings + e.findings) from e
    if findings:
        raise ValidationFailed(findings)
    return spec


def _provider(local: bool, profile: str | None, region: str | None, target: str = "auto") -> Any:
    from dlcfn.provider import ProviderOptions, load_provider

    return load_provider(local, Home.from_env(), ProviderOptions(profile=profile, region=region, target=target))


def _recorded_local(name: str) -> bool:
    """True when this machine's record says NAME is an embedded local cluster: status, update and
    delete then reach it without --local."""
    path = Home.from_env().state_file(name)
    return path.exists() and load_state(path, name).provider == "local"


def _known_region(name: str) -> str | None:
    """The region recorded when this machine created the cluster: `status NAME` then finds it
    without --region even when the default region is another one."""
    path = Home.from_env().state_file(name)
    return load_state(path, name).region or None if path.exists() else None


def _progress(title: str, json_output: bool) -> Any:
    from dlcfn.progress import Progress, choose_look

    return Progress(title, choose_look(sys.stderr, json_output=json_output))


@click.command("create-stack")
@click.argument("name")
@_spec_options
@click.option("--config", "config", type=click.Path(path_type=Path), help="cluster.yaml with the same fields as the flags.")
@click.option("--ssh-key", help="Private key file of --key-name (default: ~/.ssh/KEY_NAME.pem).")
@click.option("--no-wait", is_flag=True, help="Return once CloudFormation accepted the stack.")
@click.option("--timeout", type=click.IntRange(1), default=60, show_default=True, help="Minutes to wait.")
@click.option("--no-rollback", is_flag=True, help="Keep failed resources for debugging.")
@click.option("--dry-run", is_flag=True, help="Validate and render, print the plan, create nothing.")
@click.option("--target", type=click.Choice(["auto", "aws", "moto"]), default="auto", show_default=True,
              help="Template variant: moto leaves out what moto cannot model; auto = moto when AWS_ENDPOINT_URL is set.")
@click.option("--local", is_flag=True, help="Create the embedded local cluster instead of an AWS one.")
@click.option("--json", "json_output", is_flag=True, help="Print the cluster state as JSON.")
@_aws_options
def create_stack(name: str, config: Path | None, ssh_key: str | None, no_wait: bool, timeout: int, no_rollback: bool,
                 dry_run: bool, target: str, local: bool, json_output: bool, profile: str | None, region: str | None, **spec_options: Any) -> None:
    """Create cluster NAME (a CloudFormation stack) and wait until it is ready."""
    from dlcfn.provider import CreateRequest

    spec = _build_spec(name, region, spec_options, config, require_key_name=not local, local=local)
    provider = _provider(local, profile, region or spec.region or None, target)
    if dry_run:
        _print_plan(name, spec, provider)
        return
    request = CreateRequest(name=name, spec=spec, wait=not no_wait, timeout_s=timeout * 60.0, rollback=not no_rollback,
                            ssh_key=ssh_key or _default_key(getattr(spec, "key_name", "") or ""))
    with _progress(f"create-stack {name}", json_output) as progress:
        state = provider.create(request, progress)
    _print_state(state, json_output)


def _default_key(key_name: str) -> str:
    if not key_name:
        return ""
    for candidate in (Path.home() / ".ssh" / f"{key_name}.pem", Path.home() / ".ssh" / key_name):
        if candidate.exists():
            return str(candidate)
    return str(Path.home() / ".ssh" / f"{key_name}.pem")


def _print_plan(name: str, spec: Any, provider: Any) -> None:
    body = json.loads(provider.render(spec, provider.target))
    counts: dict[str, int] = {}
    for resource in body.get("Resources", {}).values():
        counts[resource["Type"]] = counts.get(resource["Type"], 0) + 1
    click.echo(f"plan: create stack {name!r} in {provider.session.region} ({provider.target} template); nothing was created")
    click.echo("parameters:")
    for key, value in sorted(spec.parameters().items()):
        click.echo(f"  {key} = {value}")
    click.echo(f"resources ({sum(counts.values())}):")
    for rtype, n in sorted(counts.items()):
        click.echo(f"  {n:3d} {rtype}")


@click.command("status")
@click.argument("name")
@click.option("--json", "json_output", is_flag=True, help="Print the cluster state as JSON.")
@click.option("--local", is_flag=True, help="The embedded local cluster.")
@_aws_options
def status(name: str, json_output: bool, local: bool, profile: str | None, region: str | None) -> None:
    """Show cluster NAME: stack state, outputs and the node table."""
    _check_name(name)
    state = _provider(local or _recorded_local(name), profile, region or _known_region(name)).status(name)
    _print_state(state, json_output)


def _print_state(state: ClusterState, json_output: bool) -> None:
    if json_output:
        click.echo(state.to_json())
        return
    click.echo(f"cluster {state.name}: {state.stack_status} ({state.provider}, {state.region})")
    for key, value in sorted(state.outputs.items()):
        click.echo(f"  {key}: {value}")
    if state.nodes:
        rows = [("ROLE", "NAME", "INSTANCE", "TYPE", "STATE", "PRIVATE IP", "PUBLIC IP")]
        rows += [(n.role, n.name, n.instance_id, n.instance_type, n.state, n.private_ip or "-", n.public_ip or "-") for n in state.nodes]
        click.echo(_table(rows))
    if state.host_key_note:
        click.echo(f"note: {state.host_key_note}")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@click.command("list")
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
@click.option("--local", is_flag=True, help="The embedded local clusters.")
@_aws_options
def list_clusters(json_output: bool, local: bool, profile: str | None, region: str | None) -> None:
    """List the dlcfn clusters in the region."""
    from dataclasses import asdict

    clusters = _provider(local, profile, region).list()
    if json_output:
        click.echo(json.dumps([asdict(c) for c in clusters], indent=2))
        return
    if not clusters:
        click.echo("no dlcfn clusters here")
        return
    click.echo(_table([("NAME", "STATUS", "WORKERS", "REGION", "CREATED")] + [(c.name, c.status, c.workers, c.region, c.created) for c in clusters]))


@click.command("update-stack")
@click.argument("name")
@click.option("--workers", type=str, help="New number of workers.")
@click.option("--min-workers", type=str, help="New number of workers that must come up.")
@click.option("--worker-type", help="New worker instance type.")
@click.option("--ssh-cidr", help="New CIDR allowed to SSH to the master.")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--timeout", type=click.IntRange(1), default=60, show_default=True, help="Minutes to wait.")
@click.option("--local", is_flag=True, help="The embedded local cluster.")
@click.option("--json", "json_output", is_flag=True, help="Print the cluster state as JSON.")
@_aws_options
def update_stack(name: str, workers: str | None, min_workers: str | None, worker_type: str | None, ssh_cidr: str | None, yes: bool,
                 timeout: int, local: bool, json_output: bool, profile: str | None, region: str | None) -> None:
    """Resize or reconfigure cluster NAME: shows the change set, asks, applies, waits."""
    from dlcfn.launch.nodestate import node_state_file, wait_until_ready
    from dlcfn.provider import UpdateRequest

    _check_name(name)
    given = {"workers": workers, "min_workers": min_workers, "worker_type": worker_type, "ssh_cidr": ssh_cidr}
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        raise UserInputError("update-stack: nothing to change; pass --workers, --min-workers, --worker-type or --ssh-cidr")
    provider = _provider(local or _recorded_local(name), profile, region or _known_region(name))

    def confirm(lines: list[str]) -> bool:
        return yes or click.confirm(f"apply these changes to {name}?", err=True)

    request = UpdateRequest(name=name, options=changes, timeout_s=timeout * 60.0, confirm=confirm)
    with _progress(f"update-stack {name}", json_output) as progress:
        started = time.monotonic()
        state = provider.update(request, progress)
        if state.provider == "aws" and node_state_file(state):  # added workers boot now: wait until they can run jobs
            progress.note("waiting for every node to report ready (added workers install their framework at boot)")
            wait_until_ready(name, progress, timeout_s=max(timeout * 60.0 - (time.monotonic() - started), 60.0),
                             refresh=lambda: provider.status(name), sleep=time.sleep, monotonic=time.monotonic)
            state = provider.status(name)
    _print_state(state, json_output)


@click.command("delete-stack")
@click.argument("name")
@click.option("--purge-efs", is_flag=True, help="Also delete the cluster's EFS file system (its data is lost).")
@click.option("--yes", is_flag=True, help="Delete without asking.")
@click.option("--local", is_flag=True, help="The embedded local cluster.")
@click.option("--json", "json_output", is_flag=True, help="Print the result as JSON.")
@_aws_options
def delete_stack(name: str, purge_efs: bool, yes: bool, local: bool, json_output: bool, profile: str | None, region: str | None) -> None:
    """Delete cluster NAME and sweep for anything it left behind."""
    _check_name(name)
    provider = _provider(local or _recorded_local(name), profile, region or _known_region(name))
    if provider.exists(name) and not yes:
        click.confirm(f"delete cluster {name} and everything it created?", err=True, abort=True)
    with _progress(f"delete-stack {name}", json_output) as progress:
        report = provider.delete(name, progress, purge_efs=purge_efs)
    if json_output:
        click.echo(json.dumps({"name": name, "existed": report.existed, "leftovers": [
            {"kind": x.kind, "id": x.resource_id, "outcome": x.outcome.value, "note": x.note} for x in report.leftovers]}, indent=2))
        return
    click.echo(f"cluster {name} deleted" if report.existed else f"cluster {name} does not exist; nothing to delete")
    for leftover in report.leftovers:
        click.echo(f"  swept {leftover.render()}")


def _check_name(name: str) -> None:
    from dlcfn.aws.stack import check_stack_name

    findings = check_stack_name(name)
    if findings:
        raise ValidationFailed(findings)


@click.command("ssh", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--node", default="master", show_default=True, help="master, worker-1, worker-2, ...")
@click.option("--print", "print_only", is_flag=True, help="Print the ssh command instead of running it.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, node: str, print_only: bool, command: tuple[str, ...]) -> None:
    """SSH to the master of NAME, or through it to any node: dlcfn ssh NAME [--node worker-2] [-- cmd]."""
    _check_name(name)
    state = load_state(Home.from_env().state_file(name), name)
    argv = ssh_argv(state, state.node(node), list(command))
    if print_only:
        click.echo(shlex.join(argv))
        return
    os.execvp(argv[0], argv)


def ssh_argv(state: ClusterState, target: Any, command: list[str]) -> list[str]:
    """The system ssh command line: host keys from the cluster's known_hosts only, strictly checked;
    workers through the master. A ProxyCommand (not -J) carries the same strict options to the jump
    hop: options given with -J's host apply to the destination only."""
    from dlcfn.aws.inventory import known_host_addresses

    master = state.master
    if master is None:
        raise DlcfnError(f"cluster {state.name!r} has no master in its inventory", hint=f"run `dlcfn status {state.name}`")
    known = known_host_addresses(Path(state.known_hosts)) if state.known_hosts else set()
    master_addr = master.public_ip or master.private_ip
    hops = [(master, master_addr)] + ([(target, target.private_ip)] if target.name != master.name else [])
    for node, addr in hops:
        # ssh records a host on a port other than 22 as "[addr]:port"
        if (addr if node.ssh_port == 22 else f"[{addr}]:{node.ssh_port}") not in known:
            why = state.host_key_note or "it was not in the console output when dlcfn last looked"
            raise DlcfnError(f"{node.name} ({addr}): SSH host key unknown, refusing to connect ({why})",
                             hint=f"run `dlcfn status {state.name}` once the node has booted")
    base = ["-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"]
    base += ["-i", state.ssh_key] if state.ssh_key else []
    if target.name == master.name:
        return ["ssh", *base, "-p", str(master.ssh_port), f"{state.ssh_user}@{master_addr}", *command]
    proxy = shlex.join(["ssh", *base, "-p", str(master.ssh_port), "-W", "%h:%p", f"{state.ssh_user}@{master_addr}"])
    return ["ssh", *base, "-o", f"ProxyCommand={proxy}", "-p", str(target.ssh_port), f"{state.ssh_user}@{target.private_ip}", *command]
