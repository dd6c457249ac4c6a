"""Structural checks of the rendered template: resource types, CloudFormation limits, security
defaults, IAM scoping, the moto variant's (small) difference, and templates/ drift."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from renderings import RENDERINGS

from dlcfn.blueprint import names
from dlcfn.blueprint.discovery import INLINE_CODE_LIMIT
from dlcfn.blueprint.inline import minify
from dlcfn.blueprint.params import MOTO_AMI_PARAMETER
from dlcfn.blueprint.render import FORMATS, TEMPLATE_NAME, Target, render, template_dict
from dlcfn.spec.cluster import ClusterSpec

TEMPLATES = Path(__file__).parents[2] / "templates"


def resources(t: dict[str, Any], rtype: str) -> dict[str, Any]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == rtype}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
@pytest.mark.parametrize("target", list(Target))
def test_within_cloudformation_limits(name: str, target: Target) -> None:
    body = render(RENDERINGS[name], target, "json")
    t = json.loads(body)
    assert len(body.encode()) < 51_200  # create_stack TemplateBody
    assert len(t["Resources"]) <= 500 and len(t["Parameters"]) <= 200 and len(t["Outputs"]) <= 200
    for fn in resources(t, "AWS::Lambda::Function").values():
        assert len(fn["Properties"]["Code"]["ZipFile"].encode()) <= INLINE_CODE_LIMIT


def test_resource_types_present() -> None:
    t = template_dict(ClusterSpec())
    types = {v["Type"] for v in t["Resources"].values()}
    assert types >= {
        "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP",
        "AWS::EC2::RouteTable", "AWS::EC2::SecurityGroup", "AWS::IAM::Role", "AWS::IAM::InstanceProfile",
        "AWS::EC2::LaunchTemplate", "AWS::EC2::Instance", "AWS::AutoScaling::AutoScalingGroup", "AWS::EFS::FileSystem",
        "AWS::EFS::MountTarget", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::Lambda::Function",
        "AWS::Lambda::Permission", "AWS::CloudFormation::WaitConditionHandle", "AWS::CloudFormation::WaitCondition",
        "AWS::EC2::PlacementGroup"}
    assert all(v.get("Description") for v in t["Outputs"].values())
    assert set(t["Outputs"]) == {names.O_MASTER_PUBLIC_DNS, names.O_MASTER_PUBLIC_IP, names.O_MASTER_PRIVATE_IP,
                                 names.O_MASTER_INSTANCE_ID, names.O_WORKER_GROUP, names.O_FILE_SYSTEM_ID,
                                 names.O_MASTER_QUEUE_URL, names.O_WORKER_QUEUE_URL, names.O_SSH_COMMAND}


def test_security_defaults() -> None:
    t = template_dict(ClusterSpec())
    assert "Default" not in t["Parameters"][names.P_SSH_LOCATION]  # no open default
    assert "AllowedPattern" in t["Parameters"][names.P_SSH_LOCATION]
    for sg in resources(t, "AWS::EC2::SecurityGroup").values():
        for rule in sg["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"
    for lt in resources(t, "AWS::EC2::LaunchTemplate").values():
        data = lt["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert all(m["Ebs"]["Encrypted"] is True for m in data["BlockDeviceMappings"])
    assert t["Resources"][names.FILE_SYSTEM]["Properties"]["Encrypted"] is True
    assert t["Resources"][names.FILE_SYSTEM]["DeletionPolicy"] == "Delete"
    assert all(q["Properties"]["KmsMasterKeyId"] for q in resources(t, "AWS::SQS::Queue").values())


def test_ssh_location_default_is_the_spec_cidr() -> None:
    assert template_dict(ClusterSpec(ssh_cidr="203.0.113.7/32"))["Parameters"][names.P_SSH_LOCATION]["Default"] == "203.0.113.7/32"


def test_iam_wildcards_only_on_describe_calls() -> None:
    t = template_dict(ClusterSpec())
    for role in resources(t, "AWS::IAM::Role").values():
        for policy in role["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                if "*" in st["Resource"]:
                    assert all(a.split(":")[1].startswith("Describe") for a in st["Action"]), st


def test_worker_group_waits_for_the_monitor() -> None:
    group = template_dict(ClusterSpec())["Resources"][names.WORKER_GROUP]
    assert {names.ASG_SUBSCRIPTION, names.ASG_PERMISSION} <= set(group["DependsOn"])
    [config] = group["Properties"]["NotificationConfigurations"]
    assert sorted(config["NotificationTypes"]) == sorted(
        f"autoscaling:EC2_INSTANCE_{e}" for e in ("LAUNCH", "LAUNCH_ERROR", "TERMINATE", "TERMINATE_ERROR"))
    assert group["Properties"]["AutoScalingGroupName"] == {"Fn::Sub": "${AWS::StackName}-workers"}


def test_moto_variant_differs_only_where_moto_needs_it() -> None:
    aws, moto = template_dict(ClusterSpec()), template_dict(ClusterSpec(), Target.MOTO)
    assert set(aws["Resources"]) - set(moto["Resources"]) == {names.WAIT_CONDITION}
    changed = {k for k in moto["Resources"] if moto["Resources"][k] != aws["Resources"][k]}
    assert changed == {names.PUBLIC_SUBNET, names.PRIVATE_SUBNET}  # the default zone
    assert moto["Resources"][names.PUBLIC_SUBNET]["Properties"]["AvailabilityZone"]["Fn::If"][2] == {"Fn::Sub": "${AWS::Region}a"}
    assert "Fn::GetAZs" not in json.dumps(moto)
    changed_params = {k for k in moto["Parameters"] if moto["Parameters"][k] != aws["Parameters"][k]}
    assert changed_params == {names.P_AMI_PARAMETER, names.P_GPU_FRAMEWORK, names.P_CPU_FRAMEWORK}
    assert moto["Parameters"][names.P_AMI_PARAMETER]["Default"] == MOTO_AMI_PARAMETER
    # The local cluster's hosts have MXNet already: its nodes install nothing unless asked.
    assert moto["Parameters"][names.P_GPU_FRAMEWORK]["Default"] == moto["Parameters"][names.P_CPU_FRAMEWORK]["Default"] == ""


def test_framework_parameters_reach_every_nodes_userdata() -> None:
    t = template_dict(ClusterSpec())
    gpu, cpu = t["Parameters"][names.P_GPU_FRAMEWORK], t["Parameters"][names.P_CPU_FRAMEWORK]
    assert (gpu["Default"], cpu["Default"]) == ("mxnet-cu112==1.9.1 numpy==1.23.5", "mxnet==1.9.1 numpy==1.23.5")
    assert gpu["Type"] == cpu["Type"] == "String" and gpu["Description"] and gpu["ConstraintDescription"]
    pattern = re.compile(gpu["AllowedPattern"])
    assert pattern.match("") and pattern.match(gpu["Default"]) and pattern.match("torch==2.3.1+cu121 numpy~=1.26")
    for bad in ("mxnet; reboot", "mxnet $(id)", "mxnet|sh", "numpy<1.24", " mxnet", "mxnet  numpy", "--pre mxnet", 'a"b', "a\nb"):
        assert not pattern.match(bad), bad
    assert template_dict(ClusterSpec(cpu_framework_packages=""))["Parameters"][names.P_CPU_FRAMEWORK]["Default"] == ""
    for title in (names.MASTER_LAUNCH_TEMPLATE, names.WORKER_LAUNCH_TEMPLATE):
        text, values = t["Resources"][title]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
        assert '"gpu_framework_packages": "${GpuFrameworkPackages}"' in text and '"cpu_framework_packages": "${CpuFrameworkPackages}"' in text
        assert values["GpuFrameworkPackages"] == {"Ref": names.P_GPU_FRAMEWORK} and values["CpuFrameworkPackages"] == {"Ref": names.P_CPU_FRAMEWORK}


@pytest.mark.parametrize("module", ["asg_monitor.py", "bootstrap.py"])
def test_minified_code_is_the_same_program(module: str) -> None:
    source = (Path(__file__).parents[2] / "dlcfn" / "node" / module).read_text()
    small = minify(source)
    assert len(small) < len(source)
    assert ast.dump(ast.parse(small)) == ast.dump(ast.parse(minify(small)))  # idempotent
    stripped = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]
    assert [f.name for f in stripped] == [f.name for f in ast.walk(ast.parse(small)) if isinstance(f, ast.FunctionDef)]
    # Function annotations go (nothing evaluates them); dataclass fields keep theirs (they define the fields).
    assert "def left(self, deadline):" in small or module != "bootstrap.py"
    assert "\n role: str\n" in small or module != "bootstrap.py"


@pytest.mark.parametrize("fmt", FORMATS)
def test_templates_dir_is_current(fmt: str) -> None:
    path = TEMPLATES / f"{TEMPLATE_NAME}.{fmt}"
    assert path.read_text() == render(ClusterSpec(), Target.AWS, fmt), f"{path} is stale: run `make templates`"
