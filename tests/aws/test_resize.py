"""Resizing a moto-backed cluster again and again: moto's change sets break after the first one
executed on a stack, so under moto the update goes through UpdateStack; each resize must land
(worker group capacity, running workers, the recorded parameters) and a no-op must say so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from minicluster import MiniSpec

from dlcfn.aws.session import NoChanges
from dlcfn.blueprint import names
from dlcfn.errors import DlcfnError
from dlcfn.provider import CreateRequest, UpdateRequest


def worker_group(name: str) -> dict[str, Any]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    group = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}[names.O_WORKER_GROUP]
    return dict(boto3.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0])


def stack_parameters(name: str) -> dict[str, str]:
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def assert_workers(provider: Any, aws_env: Path, name: str, count: int) -> None:
    group = worker_group(name)
    assert group["DesiredCapacity"] == count
    assert len(group["Instances"]) == count
    status = provider.status(name)
    assert [n.name for n in status.workers] == [f"worker-{i}" for i in range(1, count + 1)]
    assert all(n.state == "running" for n in status.nodes)
    assert stack_parameters(name)[names.P_WORKER_COUNT] == str(count)
    sent = json.loads((aws_env / "clusters" / name / "parameters.json").read_text())
    assert sent[names.P_WORKER_COUNT] == str(count)


def test_resize_several_times_in_a_row(provider: Any, progress: Any, aws_env: Path) -> None:
    provider.create(CreateRequest(name="resize", spec=MiniSpec(workers=3)), progress)
    assert_workers(provider, aws_env, "resize", 3)
    for before, after in ((3, 2), (2, 3), (3, 1), (1, 4)):
        asked: list[list[str]] = []
        state = provider.update(UpdateRequest(name="resize", options={"workers": after}, confirm=lambda lines: asked.append(lines) or True), progress)
        # the user confirms the parameter changes; under moto there is no resource list
        assert asked == [[f"  parameter {names.P_WORKER_COUNT}: {before} -> {after}"]]
        assert state.stack_status == "UPDATE_COMPLETE" and len(state.workers) == after
        assert_workers(provider, aws_env, "resize", after)
    # the other parameters were resent unchanged
    assert stack_parameters("resize")[names.P_WORKER_TYPE] == "t3.micro"


def test_resize_to_the_same_size_is_nothing_to_change(provider: Any, progress: Any, aws_env: Path) -> None:
    provider.create(CreateRequest(name="same", spec=MiniSpec(workers=2)), progress)
    with pytest.raises(NoChanges, match="stack 'same': nothing to change"):
        provider.update(UpdateRequest(name="same", options={"workers": 2}), progress)
    provider.update(UpdateRequest(name="same", options={"workers": 3}), progress)
    with pytest.raises(NoChanges, match="stack 'same': nothing to change"):  # also after an update
        provider.update(UpdateRequest(name="same", options={"workers": 3}), progress)
    assert_workers(provider, aws_env, "same", 3)


def test_declined_resize_changes_nothing(provider: Any, progress: Any, aws_env: Path) -> None:
    provider.create(CreateRequest(name="keep", spec=MiniSpec(workers=2)), progress)
    provider.update(UpdateRequest(name="keep", options={"workers": 1}), progress)
    with pytest.raises(DlcfnError, match="update of 'keep' cancelled; nothing changed"):
        provider.update(UpdateRequest(name="keep", options={"workers": 3}, confirm=lambda lines: False), progress)
    assert_workers(provider, aws_env, "keep", 1)
    provider.update(UpdateRequest(name="keep", options={"workers": 2}), progress)  # and the next one still works
    assert_workers(provider, aws_env, "keep", 2)


def test_blueprint_cluster_resizes_several_times(moto: None, aws_env: Path, progress: Any) -> None:
    """The same with the real blueprint (Target.MOTO) and spec rules: what `update-stack --local` runs."""
    from dlcfn.aws.provider import AwsProvider
    from dlcfn.aws.session import AwsSession, AwsTarget
    from dlcfn.home import Home
    from dlcfn.spec.cluster import cluster_spec_from_options

    ami = boto3.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    boto3.client("ssm").put_parameter(Name="/dlcfn/test/ami-id", Value=ami, Type="String")  # moto has no DLAMI parameter
    spec = cluster_spec_from_options({"workers": "3", "key_name": "k", "ssh_cidr": "203.0.113.7/32", "ami_ssm_parameter": "/dlcfn/test/ami-id"},
                                     None, require_key_name=True)
    provider = AwsProvider(home=Home(aws_env), session=AwsSession.open(AwsTarget()), target="moto")
    provider.create(CreateRequest(name="real", spec=spec), progress)
    for workers in (2, 3, 1):
        state = provider.update(UpdateRequest(name="real", options={"workers": str(workers)}), progress)
        assert [n.name for n in state.workers] == [f"worker-{i}" for i in range(1, workers + 1)]
        group = worker_group("real")
        assert (group["DesiredCapacity"], len(group["Instances"])) == (workers, workers)
        params = stack_parameters("real")
        assert (params[names.P_WORKER_COUNT], params[names.P_MIN_WORKERS]) == (str(workers), str(workers))
    with pytest.raises(NoChanges, match="nothing to change"):
        provider.update(UpdateRequest(name="real", options={"workers": "1"}), progress)
    report = provider.delete("real", progress)
    assert report.existed and all(x.outcome.value == "deleted" for x in report.leftovers)
