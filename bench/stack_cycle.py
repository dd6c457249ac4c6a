"""create -> ready -> delete of a cluster stack against an embedded moto server, timed.

Runs dlcfn's provider (the same code `dlcfn create-stack` / `delete-stack` run, with the moto
template variant, the event tail, the readiness check on EC2, the inventory and the sweep) and, in
the same run against the same server, a peer: raw boto3 create_stack + the stack_create_complete
waiter + delete_stack + the stack_delete_complete waiter (botocore's default polling), which does
no inventory and no sweep. Prints each wall time (median of --repeat runs) and the ratio.

    .venv/bin/python bench/stack_cycle.py [--workers 2] [--repeat 5]

Goal: dlcfn's cycle under 5 s on the development machine. Under moto the stack is complete as
soon as create_stack returns (moto models no WaitCondition), so "ready" is the EC2 half of the
check: the master and every worker `running`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).read()


AMI_PARAMETER = "/dlcfn/bench/ami-id"


def seed_ami_parameter() -> None:
    """moto has no Deep Learning AMI parameter (and refuses /aws/ names): publish one of its AMIs
    under our own path, which the spec then names with ami_ssm_parameter (a user option)."""
    import boto3

    ami = boto3.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    boto3.client("ssm").put_parameter(Name=AMI_PARAMETER, Value=ami, Type="String", Overwrite=True)


def spec_for(workers: int) -> Any:
    from dlcfn.spec.cluster import cluster_spec_from_options

    options = {"workers": workers, "key_name": "bench", "ssh_cidr": "10.20.30.40/32", "ami_ssm_parameter": AMI_PARAMETER}
    return cluster_spec_from_options(options, None, require_key_name=True)


def dlcfn_cycle(home: Path, workers: int) -> tuple[float, float, int]:
    from dlcfn.aws.provider import make_provider
    from dlcfn.home import Home
    from dlcfn.progress import Look, Progress
    from dlcfn.provider import CreateRequest, ProviderOptions

    start = time.perf_counter()
    provider = make_provider(Home(home), ProviderOptions(target="moto"))
    with Progress("bench", Look.PLAIN, stream=io.StringIO()) as progress:
        state = provider.create(CreateRequest(name="bench", spec=spec_for(workers)), progress)
        ready = time.perf_counter() - start
        provider.delete("bench", progress)
    elapsed = time.perf_counter() - start
    return elapsed, ready, len(state.workers)


def boto3_cycle(workers: int) -> float:
    import boto3
    import botocore.exceptions

    from dlcfn.blueprint.render import Target, render

    spec = spec_for(workers)
    body = json.dumps(json.loads(render(spec, Target.MOTO, "json")), separators=(",", ":"))  # over 51,200 bytes indented
    start = time.perf_counter()
    cfn = boto3.client("cloudformation")
    stack_id = cfn.create_stack(StackName="peer", TemplateBody=body, Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
                                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in spec.parameters().items()])["StackId"]
    cfn.get_waiter("stack_create_complete").wait(StackName=stack_id)
    try:
        cfn.delete_stack(StackName=stack_id)
    except botocore.exceptions.ClientError:
        pass  # moto's route-table leak fails the VPC deletion; the peer does not clean up after it
    cfn.get_waiter("stack_delete_complete").wait(StackName=stack_id)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        ours, ready_s, peer = [], [], []
        with tempfile.TemporaryDirectory() as home:
            for _ in range(args.repeat):
                reset(url)
                seed_ami_parameter()
                elapsed, ready, got = dlcfn_cycle(Path(home), args.workers)
                assert got == args.workers, f"ready with {got} workers, wanted {args.workers}"
                ours.append(elapsed)
                ready_s.append(ready)
                reset(url)
                seed_ami_parameter()
                peer.append(boto3_cycle(args.workers))
    finally:
        server.stop()
    result = {
        "workers": args.workers, "repeat": args.repeat,
        "dlcfn_create_ready_delete_s": round(statistics.median(ours), 3),
        "dlcfn_create_ready_s": round(statistics.median(ready_s), 3),
        "boto3_waiters_create_delete_s": round(statistics.median(peer), 3),
        "ratio_dlcfn_over_boto3": round(statistics.median(ours) / statistics.median(peer), 2),
        "goal_under_5s": statistics.median(ours) < 5.0,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["goal_under_5s"] else 1


if __name__ == "__main__":
    sys.exit(main())
