"""A small stand-in for the cluster template (the blueprint's has its own tests): the resources
the stack lifecycle reads (master instance, worker group, file system, outputs) in a VPC, tagged
like the real one. Used to test the lifecycle independently of the blueprint's evolution."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dlcfn.blueprint import names


@dataclass
class MiniSpec:
    workers: int = 2
    worker_type: str = "t3.micro"
    key_name: str = "dlcfn-test"
    extra: dict[str, str] = field(default_factory=dict)

    def parameters(self) -> dict[str, str]:
        return {names.P_WORKER_COUNT: str(self.workers), names.P_WORKER_TYPE: self.worker_type, names.P_KEY_NAME: self.key_name}


def mini_template() -> dict[str, Any]:
    ref = lambda x: {"Ref": x}  # noqa: E731
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {
            names.P_WORKER_COUNT: {"Type": "Number", "Default": "2"},
            names.P_WORKER_TYPE: {"Type": "String", "Default": "t3.micro"},
            names.P_KEY_NAME: {"Type": "String"},
        },
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.0.0.0/24"}},
            "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("Vpc")}},
            "RouteAssoc": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {"SubnetId": ref("Subnet"), "RouteTableId": ref("RouteTable")}},
            "NodeGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "nodes", "VpcId": ref("Vpc")}},
            names.FILE_SYSTEM: {"Type": "AWS::EFS::FileSystem", "Properties": {"Encrypted": True}},
            names.MASTER_INSTANCE: {"Type": "AWS::EC2::Instance", "Properties": {
                "ImageId": "ami-12c6146b", "InstanceType": "t3.micro", "SubnetId": ref("Subnet"), "KeyName": ref(names.P_KEY_NAME)}},
            "WorkerTemplate": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
                "ImageId": "ami-12c6146b", "InstanceType": ref(names.P_WORKER_TYPE)}}},
            names.WORKER_GROUP: {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {
                "MinSize": "0", "MaxSize": "16", "DesiredCapacity": ref(names.P_WORKER_COUNT),
                "LaunchTemplate": {"LaunchTemplateId": ref("WorkerTemplate"), "Version": {"Fn::GetAtt": ["WorkerTemplate", "LatestVersionNumber"]}},
                "VPCZoneIdentifier": [ref("Subnet")]}},
        },
        "Outputs": {
            names.O_MASTER_INSTANCE_ID: {"Value": ref(names.MASTER_INSTANCE)},
            names.O_MASTER_PRIVATE_IP: {"Value": {"Fn::GetAtt": [names.MASTER_INSTANCE, "PrivateIp"]}},
            names.O_WORKER_GROUP: {"Value": ref(names.WORKER_GROUP)},
            names.O_FILE_SYSTEM_ID: {"Value": ref(names.FILE_SYSTEM)},
        },
    }


def mini_renderer(spec: Any, target: str) -> str:
    return json.dumps(mini_template(), sort_keys=True)


def mini_update_parameters(current: dict[str, str], options: dict[str, Any]) -> dict[str, str]:
    mapping = {"workers": names.P_WORKER_COUNT, "worker_type": names.P_WORKER_TYPE}
    return {mapping[k]: str(v) for k, v in options.items()}
