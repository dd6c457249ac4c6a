"""Template parameters (defaults from the ClusterSpec) and the named conditions built on them.

Optional values (key pair, AZ, bring-your-own VPC/EFS, explicit AMI) are String parameters that
default to "" with a condition, because AWS-specific parameter types cannot be empty.
"""

from __future__ import annotations

from troposphere import And, Condition, Equals, Not, Parameter, Ref, Template

from dlcfn.blueprint import names
from dlcfn.blueprint.target import Target
from dlcfn.spec.cluster import (CIDR_PATTERN, DEFAULT_AMI_PARAMETER, FRAMEWORK_LISTS,
                                EFS_PERFORMANCE_MODES, MASTER_TYPES, MAX_WORKERS, PACKAGES_PATTERN, WORKER_TYPES, ClusterSpec)

# moto's SSM holds the Amazon Linux public parameters but not the Deep Learning AMI's (and
# refuses to create names under /aws/), so the moto variant defaults to one it has.
MOTO_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/amzn2-ami-hvm-x86_64-gp2"

_HEX_ID = "([0-9a-f]{8}|[0-9a-f]{17})"


def _optional_id(prefix: str) -> str:
    return f"^$|^{prefix}-{_HEX_ID}$"


def _ami_parameter(spec: ClusterSpec, target: Target) -> str:
    if target is Target.MOTO and spec.ami_ssm_parameter == DEFAULT_AMI_PARAMETER:
        return MOTO_AMI_PARAMETER
    return spec.ami_ssm_parameter


def _framework(value: str, default: str, target: Target) -> str:
    """The moto variant's nodes are the local cluster's hosts, which already run dlcfn's Python
    with MXNet (as an AMI with its framework would): unless asked, they install nothing."""
    return "" if target is Target.MOTO and value == default else value


def add_parameters(t: Template, spec: ClusterSpec, target: Target = Target.AWS) -> None:
    add = t.add_parameter
    add(Parameter(names.P_WORKER_COUNT, Type="Number", Default=str(spec.workers), MinValue=1, MaxValue=MAX_WORKERS,
                  Description="Number of worker instances (desired capacity of the worker group)."))
    add(Parameter(names.P_MIN_WORKERS, Type="Number", Default=str(spec.effective_min_workers), MinValue=1,
                  MaxValue=MAX_WORKERS, Description="Fewest workers the cluster may start with when launches fail."))
    add(Parameter(names.P_WORKER_TYPE, Type="String", Default=spec.worker_type, AllowedValues=list(WORKER_TYPES),
                  Description="Worker instance type: a current GPU family, or a small CPU type for trials."))
    add(Parameter(names.P_MASTER_TYPE, Type="String", Default=spec.master_type, AllowedValues=list(MASTER_TYPES),
                  Description="Master instance type (scheduler and SSH jump host)."))
    add(Parameter(names.P_KEY_NAME, Type="String", Default=spec.key_name, MaxLength=255,
                  Description="EC2 key pair for SSH; empty for none."))
    ssh = dict(Default=spec.ssh_cidr) if spec.ssh_cidr else {}  # no default that opens SSH to everyone
    add(Parameter(names.P_SSH_LOCATION, Type="String", AllowedPattern=CIDR_PATTERN, MinLength=9, MaxLength=18,
                  ConstraintDescription="an IPv4 CIDR such as 203.0.113.7/32",
                  Description="CIDR allowed to SSH to the master, e.g. your address/32.", **ssh))
    add(Parameter(names.P_AMI_PARAMETER, Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                  Default=_ami_parameter(spec, target), Description="SSM public parameter naming the AMI (Deep Learning AMI)."))
    add(Parameter(names.P_IMAGE_ID, Type="String", Default=spec.image_id, AllowedPattern=_optional_id("ami"),
                  ConstraintDescription="empty, or ami- and 8 or 17 hex digits",
                  Description="Explicit AMI id; overrides the SSM parameter when set."))
    add(Parameter(names.P_AVAILABILITY_ZONE, Type="String", Default=spec.availability_zone,
                  AllowedPattern="^$|^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", ConstraintDescription="empty, or a zone such as us-east-1a",
                  Description="Zone of the new subnets; empty for the region's first zone."))
    for name, value, prefix, what in (
        (names.P_VPC_ID, spec.vpc_id, "vpc", "Existing VPC; empty to create one."),
        (names.P_PUBLIC_SUBNET_ID, spec.public_subnet_id, "subnet", "Existing public subnet (with VpcId)."),
        (names.P_PRIVATE_SUBNET_ID, spec.private_subnet_id, "subnet", "Existing private subnet with a NAT route (with VpcId)."),
        (names.P_EXISTING_FILE_SYSTEM_ID, spec.efs_id, "fs", "Existing EFS file system; empty to create one."),
    ):
        add(Parameter(name, Type="String", Default=value, AllowedPattern=_optional_id(prefix),
                      ConstraintDescription=f"empty, or {prefix}- and 8 or 17 hex digits", Description=what))
    add(Parameter(names.P_EFS_PERFORMANCE_MODE, Type="String", Default=spec.efs_performance_mode,
                  AllowedValues=list(EFS_PERFORMANCE_MODES), Description="Performance mode of a new EFS file system."))
    add(Parameter(names.P_ROOT_VOLUME_GB, Type="Number", Default=str(spec.root_volume_gb), MinValue=30, MaxValue=16384,
                  Description="Root EBS volume size (GiB) of every node; encrypted gp3."))
    for name, value, what in ((names.P_SPOT, spec.spot, "Run workers on spot instances."),
                              (names.P_PLACEMENT_GROUP, spec.placement_group, "Put workers in a cluster placement group.")):
        add(Parameter(name, Type="String", Default="true" if value else "false", AllowedValues=["true", "false"],
                      Description=what))
    add(Parameter(names.P_WAIT_TIMEOUT, Type="Number", Default=str(spec.wait_timeout), MinValue=300, MaxValue=43200,
                  Description="Seconds to wait for the master's cluster-ready signal."))
    for fl in FRAMEWORK_LISTS:
        add(Parameter(fl.parameter, Type="String", Default=_framework(getattr(spec, fl.field), fl.default, target),
                      AllowedPattern=PACKAGES_PATTERN, ConstraintDescription="pip requirements, space-separated",
                      Description=f"pip requirements {fl.nodes} nodes install at boot; empty: none"))


def add_rules(t: Template) -> None:
    """CloudFormation Rules: a VPC brought without both subnets is refused before anything is created."""
    given = Not(Equals(Ref(names.P_VPC_ID), ""))
    t.add_rule("BringYourOwnNetwork", {"RuleCondition": given, "Assertions": [
        {"Assert": Not(Equals(Ref(name), "")), "AssertDescription": f"{name} is required with VpcId"}
        for name in (names.P_PUBLIC_SUBNET_ID, names.P_PRIVATE_SUBNET_ID)]})


def add_conditions(t: Template) -> None:
    def empty(name: str) -> Equals:
        return Equals(Ref(name), "")

    t.add_condition(names.C_CREATE_NETWORK, empty(names.P_VPC_ID))
    # One condition per id parameter, so that cfn-lint sees which branch each id is used in.
    t.add_condition(names.C_NEW_PUBLIC_SUBNET, empty(names.P_PUBLIC_SUBNET_ID))
    t.add_condition(names.C_NEW_PRIVATE_SUBNET, empty(names.P_PRIVATE_SUBNET_ID))
    # A new subnet in a new VPC gets the new route tables (a VPC brought without subnets is
    # rejected by the spec and by the template's Rules).
    for cond, subnet in ((names.C_ROUTE_PUBLIC_SUBNET, names.C_NEW_PUBLIC_SUBNET),
                         (names.C_ROUTE_PRIVATE_SUBNET, names.C_NEW_PRIVATE_SUBNET)):
        t.add_condition(cond, And(Condition(names.C_CREATE_NETWORK), Condition(subnet)))
    t.add_condition(names.C_CREATE_FILE_SYSTEM, empty(names.P_EXISTING_FILE_SYSTEM_ID))
    t.add_condition(names.C_HAS_AZ, Not(empty(names.P_AVAILABILITY_ZONE)))
    t.add_condition(names.C_HAS_KEY, Not(empty(names.P_KEY_NAME)))
    t.add_condition(names.C_HAS_IMAGE_ID, Not(empty(names.P_IMAGE_ID)))
    t.add_condition(names.C_SPOT, Equals(Ref(names.P_SPOT), "true"))
    t.add_condition(names.C_PLACEMENT_GROUP, Equals(Ref(names.P_PLACEMENT_GROUP), "true"))
