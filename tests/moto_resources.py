"""A snapshot of every kind of resource a cluster stack can create, for "nothing left behind"
assertions against moto (in-process or a server). Shared by the stack lifecycle tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def snapshot(client: Callable[[str], Any]) -> dict[str, set[str]]:
    """Resource ids by kind; `client(service)` returns a boto3 client (moto's defaults included)."""
    ec2 = client("ec2")
    live = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"}
    return {
        "vpc": {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]},
        "subnet": {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]},
        "route-table": {t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]},
        "security-group": {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]},
        "internet-gateway": {g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]},
        "nat-gateway": {g["NatGatewayId"] for g in ec2.describe_nat_gateways()["NatGateways"] if g["State"] != "deleted"},
        "eip": {a.get("AllocationId", "") for a in ec2.describe_addresses()["Addresses"]},
        "instance": live,
        # moto keeps the ENIs of terminated instances (AWS deletes them with the instance): count
        # the ENIs of instances that are not terminated, plus unattached ones.
        "eni": {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces()["NetworkInterfaces"]
                if e.get("Attachment", {}).get("InstanceId") in live or "Attachment" not in e},
        "launch-template": {t["LaunchTemplateId"] for t in ec2.describe_launch_templates()["LaunchTemplates"]},
        "asg": {g["AutoScalingGroupName"] for g in client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]},
        "efs": {f["FileSystemId"] for f in client("efs").describe_file_systems()["FileSystems"]},
        "sqs": set(client("sqs").list_queues().get("QueueUrls", [])),
        "sns": {t["TopicArn"] for t in client("sns").list_topics()["Topics"]},
        "lambda": {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]},
        "iam-role": {r["RoleName"] for r in client("iam").list_roles()["Roles"]},
        "stack": {s["StackName"] for s in client("cloudformation").describe_stacks()["Stacks"] if s["StackStatus"] != "DELETE_COMPLETE"},
    }
