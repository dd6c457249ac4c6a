"""After a stack is deleted: find what is still tagged `dlcfn:cluster=NAME` and remove it or
report it, so that a deleted cluster costs nothing.

CloudFormation normally deletes everything it created; what remains is what it could not (an ENI
still attached while the stack went, an EFS kept by its DeletionPolicy unless --purge-efs) and,
under moto, the VPC's route tables (moto's delete_stack leaks them; this sweep is where dlcfn works
around that, so the tests check the real product path). EC2 resources are found with one
describe_tags call and deleted in dependency order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dlcfn.aws.session import AwsSession, error_code
from dlcfn.blueprint.names import CLUSTER_TAG


class Outcome(enum.Enum):
    DELETED = "deleted"
    KEPT = "kept"  # deliberately left (EFS without --purge-efs)
    FAILED = "failed"


@dataclass(frozen=True)
class Leftover:
    kind: str
    resource_id: str
    outcome: Outcome
    note: str = ""

    def render(self) -> str:
        return f"{self.kind} {self.resource_id}: {self.outcome.value}{' (' + self.note + ')' if self.note else ''}"


# describe_tags resource types in the order they can be deleted (dependents first).
_ORDER = ["instance", "natgateway", "elastic-ip", "network-interface", "route-table", "subnet",
          "security-group", "internet-gateway", "vpc", "launch-template", "volume"]


# CloudFormation resource types -> the kinds above, for resources the stack listed before it went.
_STACK_TYPES = {
    "AWS::EC2::Instance": "instance", "AWS::EC2::NatGateway": "natgateway", "AWS::EC2::EIP": "elastic-ip",
    "AWS::EC2::NetworkInterface": "network-interface", "AWS::EC2::RouteTable": "route-table", "AWS::EC2::Subnet": "subnet",
    "AWS::EC2::SecurityGroup": "security-group", "AWS::EC2::InternetGateway": "internet-gateway", "AWS::EC2::VPC": "vpc",
    "AWS::EC2::LaunchTemplate": "launch-template", "AWS::EC2::Volume": "volume",
}


def sweep(session: AwsSession, name: str, *, purge_efs: bool, stack_resources: Sequence[tuple[str, str]] = ()) -> list[Leftover]:
    """Remove what is left of cluster `name`: EC2 resources tagged with it, and the EC2 resources
    the stack listed before its deletion (`(type, physical id)` pairs; moto does not tag all)."""
    ec2 = session.client("ec2")
    tagged = _tagged_ec2(ec2, name)
    for kind, resource_id in _from_stack(ec2, stack_resources):
        tagged.setdefault(kind, set()).add(resource_id)
    results: list[Leftover | None] = []
    for kind in _ORDER:
        for resource_id in sorted(tagged.get(kind, [])):
            results.append(_remove(kind, resource_id, _EC2_DELETERS[kind], ec2))
    results += _sweep_file_systems(session.client("efs"), name, purge_efs)
    results.append(_sweep_template_bucket(session, name))
    return [r for r in results if r is not None]


def _sweep_template_bucket(session: AwsSession, name: str) -> Leftover | None:
    """The S3 bucket a too-large template is staged in while a call runs (Stacks.template_source):
    normally gone at once; one left by an interrupted create or update goes now."""
    import botocore.exceptions as bx

    from dlcfn.aws.stack import delete_template_bucket, template_bucket

    bucket = f"template bucket of {name}"
    try:
        bucket = template_bucket(session.client("sts").get_caller_identity()["Account"], session.region, name)
        return Leftover("s3-bucket", bucket, Outcome.DELETED) if delete_template_bucket(session.client("s3"), bucket) else None
    except bx.ClientError as e:
        return Leftover("s3-bucket", bucket, Outcome.FAILED, error_code(e))


def _tagged_ec2(ec2: Any, name: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    filters = [{"Name": "key", "Values": [CLUSTER_TAG]}, {"Name": "value", "Values": [name]}]
    for page in ec2.get_paginator("describe_tags").paginate(Filters=filters):
        for tag in page["Tags"]:
            found.setdefault(tag["ResourceType"], set()).add(tag["ResourceId"])
    # Elastic IPs and NAT gateways are not in describe_tags everywhere (moto leaves them out).
    tag_filter = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [name]}]
    addresses = ec2.describe_addresses(Filters=tag_filter)["Addresses"]
    found.setdefault("elastic-ip", set()).update(a["AllocationId"] for a in addresses if "AllocationId" in a)
    gateways = ec2.describe_nat_gateways(Filters=tag_filter)["NatGateways"]
    found.setdefault("natgateway", set()).update(g["NatGatewayId"] for g in gateways if g["State"] not in ("deleting", "deleted"))
    if "instance" in found:  # terminated instances keep their tags for a while: nothing to do
        found["instance"] = _live_instances(ec2, found["instance"])
    return found


def _from_stack(ec2: Any, resources: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    found = []
    for rtype, physical_id in resources:
        kind = _STACK_TYPES.get(rtype)
        if kind is None or not physical_id:
            continue
        if kind == "elastic-ip":  # an EIP's physical id is its public IP; release needs the allocation id
            addresses = ec2.describe_addresses(Filters=[{"Name": "public-ip", "Values": [physical_id]}])["Addresses"]
            found += [(kind, a["AllocationId"]) for a in addresses if "AllocationId" in a]
        elif kind == "natgateway":
            gateways = ec2.describe_nat_gateways(NatGatewayIds=[physical_id])["NatGateways"]
            found += [(kind, g["NatGatewayId"]) for g in gateways if g["State"] not in ("deleting", "deleted")]
            # its ENI goes with it on AWS; moto keeps it after the gateway is deleted
            found += [("network-interface", a["NetworkInterfaceId"]) for g in gateways
                      for a in g.get("NatGatewayAddresses", []) if a.get("NetworkInterfaceId")]
        elif kind == "instance":
            found += [(kind, i) for i in _live_instances(ec2, {physical_id})]
        else:
            found.append((kind, physical_id))
    return found


def _live_instances(ec2: Any, ids: set[str]) -> set[str]:
    resp = ec2.describe_instances(InstanceIds=sorted(ids))
    return {i["InstanceId"] for r in resp["Reservations"] for i in r["Instances"] if i["State"]["Name"] not in ("terminated", "shutting-down")}


def _remove(kind: str, resource_id: str, deleter: Callable[[Any, str], None], client: Any) -> Leftover | None:
    """Delete one resource; None when it was already gone (tags can outlive their resource)."""
    import botocore.exceptions

    try:
        deleter(client, resource_id)
    except botocore.exceptions.ClientError as e:
        code = error_code(e)
        if "NotFound" in code or code in ("FileSystemNotFound", "InvalidAllocationID.NotFound"):
            return None
        return Leftover(kind, resource_id, Outcome.FAILED, f"{code}: delete it by hand")
    return Leftover(kind, resource_id, Outcome.DELETED)


def _delete_route_table(ec2: Any, rtb: str) -> None:
    table = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]
    for assoc in table.get("Associations", []):
        if not assoc.get("Main"):
            ec2.disassociate_route_table(AssociationId=assoc["RouteTableAssociationId"])
    ec2.delete_route_table(RouteTableId=rtb)


def _delete_internet_gateway(ec2: Any, igw: str) -> None:
    gateway = ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]
    for attachment in gateway.get("Attachments", []):
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=attachment["VpcId"])
    ec2.delete_internet_gateway(InternetGatewayId=igw)


def _delete_vpc(ec2: Any, vpc: str) -> None:
    # moto leaves the VPC's main route table behind with the VPC; AWS deletes it with the VPC.
    ec2.delete_vpc(VpcId=vpc)


_EC2_DELETERS: dict[str, Callable[[Any, str], None]] = {
    "instance": lambda ec2, i: ec2.terminate_instances(InstanceIds=[i]),
    "natgateway": lambda ec2, i: ec2.delete_nat_gateway(NatGatewayId=i),
    "elastic-ip": lambda ec2, i: ec2.release_address(AllocationId=i),
    "network-interface": lambda ec2, i: ec2.delete_network_interface(NetworkInterfaceId=i),
    "route-table": _delete_route_table,
    "subnet": lambda ec2, i: ec2.delete_subnet(SubnetId=i),
    "security-group": lambda ec2, i: ec2.delete_security_group(GroupId=i),
    "internet-gateway": _delete_internet_gateway,
    "vpc": _delete_vpc,
    "launch-template": lambda ec2, i: ec2.delete_launch_template(LaunchTemplateId=i),
    "volume": lambda ec2, i: ec2.delete_volume(VolumeId=i),
}


def _sweep_file_systems(efs: Any, name: str, purge: bool) -> list[Leftover | None]:
    results: list[Leftover | None] = []
    for page in efs.get_paginator("describe_file_systems").paginate():
        for fs in page["FileSystems"]:
            tags = {t["Key"]: t["Value"] for t in fs.get("Tags", [])}
            if tags.get(CLUSTER_TAG) != name:
                continue
            fs_id = fs["FileSystemId"]
            if not purge:
                results.append(Leftover("file-system", fs_id, Outcome.KEPT, "it holds your data; delete it with --purge-efs"))
                continue
            results.append(_remove("file-system", fs_id, _delete_file_system, efs))
    return results


def _delete_file_system(efs: Any, fs_id: str) -> None:
    for target in efs.describe_mount_targets(FileSystemId=fs_id).get("MountTargets", []):
        efs.delete_mount_target(MountTargetId=target["MountTargetId"])
    efs.delete_file_system(FileSystemId=fs_id)
