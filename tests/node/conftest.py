"""Fixtures for the node code: a cluster stack in moto (worker group, master instance, the two
discovery queues) and a WaitCondition handle on 127.0.0.1 that records signals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from dlcfn.blueprint import names
from dlcfn.node.events import SignalReceiver

from standin import standin_template

REGION = "us-east-1"
AZ = "us-east-1a"
STACK = "dl"
WORKER_TYPE = "p3.8xlarge"


@dataclass
class MotoCluster:
    """The resources a cluster stack holds, as the node code sees them."""

    stack_name: str
    group: str
    subnet: str
    master_id: str
    master_ip: str
    master_queue_url: str
    worker_queue_url: str

    def client(self, service: str):
        return boto3.client(service, region_name=REGION)

    def group_info(self) -> dict:
        return self.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])[
            "AutoScalingGroups"
        ][0]

    def worker_ids(self) -> list[str]:
        return sorted(i["InstanceId"] for i in self.group_info()["Instances"])

    def private_ip(self, instance_id: str) -> str:
        reservations = self.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
        return reservations[0]["Instances"][0]["PrivateIpAddress"]

    def messages(self, queue_url: str) -> list[dict]:
        """Every message in the queue, left in place (visibility 0)."""
        resp = self.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [json.loads(m["Body"]) for m in resp.get("Messages", [])]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def cluster_template(fifo: bool = False) -> str:
    """The template the node tests stand on (stand-in until the blueprint renders for moto)."""
    return json.dumps(standin_template(AZ, WORKER_TYPE, fifo=fifo))


def make_cluster(workers: int, min_size: int = 1, fifo: bool = False) -> MotoCluster:
    """Create the cluster stack in moto and find the node-facing resources by logical ID."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=cluster_template(fifo),
        Parameters=[
            {"ParameterKey": names.P_WORKER_COUNT, "ParameterValue": str(workers)},
            {"ParameterKey": names.P_MIN_WORKERS, "ParameterValue": str(min_size)},
        ],
    )
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        if "LogicalResourceId" in r  # moto lists the unmodelled WaitCondition(Handle) without one
    }
    master = boto3.client("ec2", region_name=REGION).describe_instances(
        InstanceIds=[physical[names.MASTER_INSTANCE]]
    )["Reservations"][0]["Instances"][0]
    return MotoCluster(
        stack_name=STACK,
        group=physical[names.WORKER_GROUP],
        subnet=master["SubnetId"],
        master_id=master["InstanceId"],
        master_ip=master["PrivateIpAddress"],
        master_queue_url=physical[names.MASTER_QUEUE],
        worker_queue_url=physical[names.WORKER_QUEUE],
    )


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as r:
        yield r


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # moto creates the WaitCondition(Handle) as placeholders and says so on every stack.
    here = __file__.rsplit("/", 1)[0]
    quiet = pytest.mark.filterwarnings("ignore:Tried to parse AWS..CloudFormation..WaitCondition")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(quiet)
