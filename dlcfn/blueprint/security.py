"""Security groups: SSH from SSHLocation to the master only; all traffic among cluster nodes
(master and workers share NodeSecurityGroup); NFS from the nodes to the EFS mount target.

Node egress is limited to HTTPS/HTTP (AWS APIs, package mirrors), the other nodes and NFS.
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, Sub, Tags, Template, ec2

from dlcfn.blueprint import names
from dlcfn.blueprint.network import vpc_id

ANYWHERE = "0.0.0.0/0"


def _sg_id(name: str) -> GetAtt:
    return GetAtt(name, "GroupId")


def add_security(t: Template) -> None:
    t.add_resource(ec2.SecurityGroup(
        names.MASTER_SG, VpcId=vpc_id(), GroupDescription="dlcfn master: SSH from SSHLocation",
        SecurityGroupIngress=[ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=22, ToPort=22,
                                                    CidrIp=Ref(names.P_SSH_LOCATION), Description="SSH from SSHLocation")],
        # The master's egress comes from NodeSecurityGroup; this rule only replaces the default allow-all.
        SecurityGroupEgress=[ec2.SecurityGroupRule(IpProtocol="icmp", FromPort=-1, ToPort=-1, CidrIp="127.0.0.1/32",
                                                   Description="no extra egress (see NodeSecurityGroup)")],
        Tags=Tags(Name=Sub("${AWS::StackName}-master"))))
    t.add_resource(ec2.SecurityGroup(
        names.NODE_SG, VpcId=vpc_id(), GroupDescription="dlcfn nodes: master and workers",
        SecurityGroupEgress=[
            ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp=ANYWHERE, Description="HTTPS: AWS APIs, pip, conda"),
            ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp=ANYWHERE, Description="HTTP: OS package mirrors"),
        ],
        Tags=Tags(Name=Sub("${AWS::StackName}-nodes"))))
    t.add_resource(ec2.SecurityGroup(
        names.EFS_SG, VpcId=vpc_id(), GroupDescription="dlcfn EFS mount target: NFS from the nodes",
        SecurityGroupIngress=[ec2.SecurityGroupRule(IpProtocol="tcp", FromPort=2049, ToPort=2049,
                                                    SourceSecurityGroupId=_sg_id(names.NODE_SG), Description="NFS from nodes")],
        SecurityGroupEgress=[ec2.SecurityGroupRule(IpProtocol="icmp", FromPort=-1, ToPort=-1, CidrIp="127.0.0.1/32",
                                                   Description="a mount target needs no egress")],
        Tags=Tags(Name=Sub("${AWS::StackName}-efs"))))
    # Separate rule resources: a group cannot name itself inside its own definition.
    t.add_resource(ec2.SecurityGroupIngress(
        "NodeIngressFromNodes", GroupId=_sg_id(names.NODE_SG), IpProtocol="-1",
        SourceSecurityGroupId=_sg_id(names.NODE_SG), Description="all traffic among cluster nodes (kvstore, SSH, NCCL)"))
    t.add_resource(ec2.SecurityGroupEgress(
        "NodeEgressToNodes", GroupId=_sg_id(names.NODE_SG), IpProtocol="-1",
        DestinationSecurityGroupId=_sg_id(names.NODE_SG), Description="all traffic among cluster nodes"))
    t.add_resource(ec2.SecurityGroupEgress(
        "NodeEgressToEfs", GroupId=_sg_id(names.NODE_SG), IpProtocol="tcp", FromPort=2049, ToPort=2049,
        DestinationSecurityGroupId=_sg_id(names.EFS_SG), Description="NFS to the EFS mount target"))
