"""`dlcfn template`: validate a cluster spec (flags and/or cluster.yaml) and print or write the
CloudFormation template whose parameter defaults are that spec. Creates nothing in AWS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dlcfn.errors import UserInputError


@click.command("template")
@click.option("--workers", type=str, help="Number of workers (1-1000).")
@click.option("--min-workers", type=str, help="Fewest workers to start with when launches fail (default: all).")
@click.option("--worker-type", help="Worker instance type: p3, p4d, p5, g4dn, g5, g6, g6e sizes, or a small CPU type.")
@click.option("--master-type", help="Master instance type.")
@click.option("--key-name", help="EC2 key pair for SSH.")
@click.option("--ssh-cidr", help="CIDR allowed to SSH to the master, e.g. 203.0.113.7/32 (no default).")
@click.option("--region", help="Region the template is meant for (checked against the known list).")
@click.option("--availability-zone", help="Zone of the subnets (default: the region's first).")
@click.option("--vpc-id", help="Bring your own VPC (with --public-subnet-id and --private-subnet-id).")
@click.option("--public-subnet-id", help="Existing public subnet for the master.")
@click.option("--private-subnet-id", help="Existing private subnet (NAT route) for the workers.")
@click.option("--efs-id", help="Existing EFS file system id (fs- and 8 or 17 hex digits).")
@click.option("--efs-performance-mode", help="generalPurpose or maxIO (new file system only).")
@click.option("--root-volume-gb", type=str, help="Root volume size in GiB (30-16384).")
@click.option("--spot/--no-spot", default=None, help="Workers on spot instances.")
@click.option("--placement-group/--no-placement-group", default=None, help="Workers in a cluster placement group.")
@click.option("--image-id", help="Explicit AMI id (default: the Deep Learning AMI from SSM).")
@click.option("--ami-ssm-parameter", help="SSM parameter path naming the AMI.")
@click.option("--wait-timeout", type=str, help="Seconds to wait for the cluster-ready signal (300-43200).")
@click.option("--gpu-framework-packages", help="pip requirements GPU nodes install at boot, space-separated ('' for none).")
@click.option("--cpu-framework-packages", help="pip requirements nodes without GPUs install at boot ('' for none).")
@click.option("--config", "config", type=click.Path(path_type=Path), help="cluster.yaml with the same fields as the flags.")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), help="Write to FILE instead of stdout.")
@click.option("--format", "fmt", default="json", show_default=True, help="json or yaml.")
@click.option("--target", default="aws", show_default=True, help="aws, or moto (the variant for the local stand-in).")
def template(config: Path | None, output: Path | None, fmt: str, target: str, **options: Any) -> None:
    """Render the cluster CloudFormation template (parameter defaults from the options)."""
    from dlcfn.blueprint.render import FORMATS, Target, render
    from dlcfn.spec.cluster import cluster_spec_from_options

    # Checked here, not by click.Choice, so that bad input is one dlcfn line with exit 2.
    if fmt not in FORMATS:
        raise UserInputError(f"--format: {fmt!r} is not allowed; choose one of: {', '.join(FORMATS)}")
    targets = [t.value for t in Target]
    if target not in targets:
        raise UserInputError(f"--target: {target!r} is not allowed; choose one of: {', '.join(targets)}")
    spec = cluster_spec_from_options({k: v for k, v in options.items() if v is not None}, config)
    text = render(spec, Target(target), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as e:
        raise UserInputError(f"-o: cannot write {output}: {e.strerror}") from e
    click.echo(f"wrote {output} ({len(text.encode())} bytes)", err=True)
