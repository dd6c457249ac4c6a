"""Fixtures for the node code: a moto account holding a worker group, a master instance, the two
discovery queues, and a WaitCondition handle on 127.0.0.1 that records signals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from dlcfn.node.events import SignalReceiver

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


def make_cluster(workers: int, min_size: int = 1) -> MotoCluster:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=AZ)["Subnet"]["SubnetId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{STACK}-worker",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": WORKER_TYPE},
    )["LaunchTemplate"]["LaunchTemplateId"]
    group = f"{STACK}-workers"
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        MinSize=min_size,
        MaxSize=max(workers, 1),
        DesiredCapacity=workers,
        VPCZoneIdentifier=subnet,
    )
    master = ec2.run_instances(ImageId="ami-12c6146b", InstanceType="p3.2xlarge", MinCount=1, MaxCount=1, SubnetId=subnet)[
        "Instances"
    ][0]
    sqs = boto3.client("sqs", region_name=REGION)
    return MotoCluster(
        stack_name=STACK,
        group=group,
        subnet=subnet,
        master_id=master["InstanceId"],
        master_ip=master["PrivateIpAddress"],
        master_queue_url=sqs.create_queue(QueueName=f"{STACK}-master")["QueueUrl"],
        worker_queue_url=sqs.create_queue(QueueName=f"{STACK}-worker")["QueueUrl"],
    )


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as r:
        yield r
