"""Network: VPC, a public subnet (master, NAT) and a private subnet (workers, EFS), internet and
NAT gateways, route tables. Every resource is skipped (condition CreateNetwork) when the user
brings a VPC; `vpc_id()`/`public_subnet()`/`private_subnet()` pick the right id either way.
"""

from __future__ import annotations

from troposphere import GetAtt, GetAZs, If, Ref, Select, Sub, Tags, Template, ec2

from dlcfn.blueprint import names
from dlcfn.blueprint.target import Target

VPC_CIDR = "10.0.0.0/16"
PUBLIC_CIDR = "10.0.0.0/20"
PRIVATE_CIDR = "10.0.128.0/17"  # the big one: it holds the worker group


def vpc_id() -> If:
    return If(names.C_CREATE_NETWORK, Ref(names.VPC), Ref(names.P_VPC_ID))


def public_subnet() -> If:
    return If(names.C_NEW_PUBLIC_SUBNET, Ref(names.PUBLIC_SUBNET), Ref(names.P_PUBLIC_SUBNET_ID))


def private_subnet() -> If:
    return If(names.C_NEW_PRIVATE_SUBNET, Ref(names.PRIVATE_SUBNET), Ref(names.P_PRIVATE_SUBNET_ID))


def _zone(target: Target) -> If:
    # moto answers GetAZs with us-east-1's zones whatever the region; "<region>a" exists in
    # every commercial region, so the moto variant names it directly.
    first = Sub("${AWS::Region}a") if target is Target.MOTO else Select(0, GetAZs(""))
    return If(names.C_HAS_AZ, Ref(names.P_AVAILABILITY_ZONE), first)


def _tags(what: str) -> Tags:
    return Tags(Name=Sub("${AWS::StackName}-" + what))


def add_network(t: Template, target: Target) -> None:
    cond = names.C_CREATE_NETWORK
    vpc = t.add_resource(ec2.VPC(names.VPC, Condition=cond, CidrBlock=VPC_CIDR, EnableDnsSupport=True,
                                 EnableDnsHostnames=True, Tags=_tags("vpc")))
    igw = t.add_resource(ec2.InternetGateway(names.INTERNET_GATEWAY, Condition=cond, Tags=_tags("igw")))
    attach = t.add_resource(ec2.VPCGatewayAttachment(names.GATEWAY_ATTACHMENT, Condition=cond, VpcId=Ref(vpc),
                                                     InternetGatewayId=Ref(igw)))
    public = t.add_resource(ec2.Subnet(
        names.PUBLIC_SUBNET, Condition=names.C_NEW_PUBLIC_SUBNET, VpcId=vpc_id(), CidrBlock=PUBLIC_CIDR, AvailabilityZone=_zone(target),
        MapPublicIpOnLaunch=True, Tags=_tags("public"),
        Metadata={"checkov": {"skip": [{"id": "CKV_AWS_130", "comment": (
            "the public subnet holds only the master (the SSH entry point, reachable from SSHLocation only) "
            "and the NAT gateway; workers and EFS live in the private subnet")}]}}))
    private = t.add_resource(ec2.Subnet(names.PRIVATE_SUBNET, Condition=names.C_NEW_PRIVATE_SUBNET, VpcId=vpc_id(), CidrBlock=PRIVATE_CIDR,
                                        AvailabilityZone=_zone(target), MapPublicIpOnLaunch=False, Tags=_tags("private")))
    public_rt = t.add_resource(ec2.RouteTable(names.PUBLIC_ROUTE_TABLE, Condition=cond, VpcId=Ref(vpc), Tags=_tags("public")))
    t.add_resource(ec2.Route(names.PUBLIC_ROUTE, Condition=cond, DependsOn=attach.title, RouteTableId=Ref(public_rt),
                             DestinationCidrBlock="0.0.0.0/0", GatewayId=Ref(igw)))
    t.add_resource(ec2.SubnetRouteTableAssociation(names.PUBLIC_ROUTE_ASSOC, Condition=names.C_ROUTE_PUBLIC_SUBNET, SubnetId=Ref(public),
                                                   RouteTableId=Ref(public_rt)))
    eip = t.add_resource(ec2.EIP(names.NAT_EIP, Condition=cond, DependsOn=attach.title, Domain="vpc", Tags=_tags("nat")))
    nat = t.add_resource(ec2.NatGateway(names.NAT_GATEWAY, Condition=cond, AllocationId=GetAtt(eip, "AllocationId"),
                                        SubnetId=public_subnet(), Tags=_tags("nat")))
    private_rt = t.add_resource(ec2.RouteTable(names.PRIVATE_ROUTE_TABLE, Condition=cond, VpcId=Ref(vpc), Tags=_tags("private")))
    t.add_resource(ec2.Route(names.PRIVATE_ROUTE, Condition=cond, RouteTableId=Ref(private_rt),
                             DestinationCidrBlock="0.0.0.0/0", NatGatewayId=Ref(nat)))
    t.add_resource(ec2.SubnetRouteTableAssociation(names.PRIVATE_ROUTE_ASSOC, Condition=names.C_ROUTE_PRIVATE_SUBNET, SubnetId=Ref(private),
                                                   RouteTableId=Ref(private_rt)))
