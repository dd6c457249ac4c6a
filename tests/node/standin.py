"""A stand-in for the cluster template, limited to what the node code touches: the worker group
(named `<stack>-workers`, launch template), the master instance, the two discovery queues and
the wait handle. `conftest.make_cluster` creates it as a real moto stack; the blueprint's own
template replaces it once it renders for moto (see `conftest.cluster_template`)."""

from __future__ import annotations

from typing import Any

from dlcfn.blueprint import names


def standin_template(az: str, worker_type: str, fifo: bool = False) -> dict[str, Any]:
    ref = lambda x: {"Ref": x}  # noqa: E731
    def queue(role: str) -> dict[str, Any]:
        # moto does not add the .fifo suffix CloudFormation generates: name FIFO queues.
        name = {"QueueName": {"Fn::Sub": "${AWS::StackName}-%s.fifo" % role}, "FifoQueue": True}
        return {"MessageRetentionPeriod": 1209600, **(name if fifo else {})}

    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            names.P_WORKER_COUNT: {"Type": "Number"},
            names.P_MIN_WORKERS: {"Type": "Number"},
        },
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {
                "VpcId": ref("Vpc"), "CidrBlock": "10.0.1.0/24", "AvailabilityZone": az}},
            "WorkerTemplate": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
                "ImageId": "ami-12c6146b", "InstanceType": worker_type}}},
            names.WORKER_GROUP: {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
                "AutoScalingGroupName": {"Fn::Sub": "${AWS::StackName}-workers"},
                "MinSize": ref(names.P_MIN_WORKERS), "MaxSize": ref(names.P_WORKER_COUNT),
                "DesiredCapacity": ref(names.P_WORKER_COUNT),
                "LaunchTemplate": {"LaunchTemplateId": ref("WorkerTemplate"),
                                   "Version": {"Fn::GetAtt": ["WorkerTemplate", "LatestVersionNumber"]}},
                "VPCZoneIdentifier": [ref("Subnet")]}},
            names.MASTER_INSTANCE: {"Type": "AWS::EC2::Instance", "Properties": {
                "ImageId": "ami-12c6146b", "InstanceType": "p3.2xlarge", "SubnetId": ref("Subnet")}},
            names.MASTER_QUEUE: {"Type": "AWS::SQS::Queue", "Properties": queue("master")},
            names.WORKER_QUEUE: {"Type": "AWS::SQS::Queue", "Properties": queue("worker")},
            names.WAIT_HANDLE: {"Type": "AWS::CloudFormation::WaitConditionHandle"},
        },
    }
