"""Compute: launch templates (IMDSv2 only, encrypted gp3 root volume, UserData that runs the node
bootstrap), the master instance in the public subnet and the worker Auto Scaling group in the
private subnet, notifying the SNS topic of every launch and termination.
"""

from __future__ import annotations

from troposphere import Base64, GetAtt, If, NoValue, Ref, Sub, Template, autoscaling, cloudformation, ec2

from dlcfn.blueprint import names
from dlcfn.blueprint.iam import WORKER_GROUP_NAME
from dlcfn.blueprint.network import private_subnet, public_subnet
from dlcfn.blueprint.storage import file_system_id
from dlcfn.blueprint.inline import minify, packed
from dlcfn.node.userdata import MASTER, WORKER, bootstrap_blob, bootstrap_source, render_userdata, userdata_variables

ROOT_DEVICE = "/dev/sda1"  # the Ubuntu Deep Learning AMIs' root device
NOTIFICATIONS = ["autoscaling:EC2_INSTANCE_LAUNCH", "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
                 "autoscaling:EC2_INSTANCE_TERMINATE", "autoscaling:EC2_INSTANCE_TERMINATE_ERROR"]
NODES_READY = "NodePrerequisites"


def image_id() -> If:
    return If(names.C_HAS_IMAGE_ID, Ref(names.P_IMAGE_ID), Ref(names.P_AMI_PARAMETER))


def _userdata_values() -> dict[str, object]:
    return {
        "MasterQueueUrl": Ref(names.MASTER_QUEUE), "WorkerQueueUrl": Ref(names.WORKER_QUEUE),
        "WaitHandleUrl": Ref(names.WAIT_HANDLE), "FileSystemId": file_system_id(), "ReadyTimeout": Ref(names.P_WAIT_TIMEOUT),
        "WorkerGroupName": Sub(WORKER_GROUP_NAME), "MinWorkers": Ref(names.P_MIN_WORKERS),
        "GpuFrameworkPackages": Ref(names.P_GPU_FRAMEWORK), "CpuFrameworkPackages": Ref(names.P_CPU_FRAMEWORK),
    }


def node_script(role: str) -> str:
    """The node's UserData script with bootstrap.py minified and the script's indented comments
    dropped: two full copies (master, worker) would not fit create_stack's 51,200-byte
    TemplateBody limit. The header comment stays, for whoever reads the UserData on a node."""
    script, blob = render_userdata(role), bootstrap_blob()
    if blob not in script:
        raise ValueError("render_userdata no longer embeds bootstrap_blob(); update node_script")
    script = script.replace(blob, packed(minify(bootstrap_source().decode())))
    return "".join(line for n, line in enumerate(script.splitlines(keepends=True)) if n < 3 or not line.lstrip().startswith("#"))


def userdata(role: str) -> Base64:
    values = _userdata_values()
    return Base64(Sub(node_script(role), {name: values[name] for name in userdata_variables(role)}))


def _launch_template(title: str, role: str, type_param: str, **extra: object) -> ec2.LaunchTemplate:
    data = ec2.LaunchTemplateData(
        ImageId=image_id(), InstanceType=Ref(type_param),
        KeyName=If(names.C_HAS_KEY, Ref(names.P_KEY_NAME), NoValue),
        IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(names.INSTANCE_PROFILE, "Arn")),
        # IMDSv2 only; hop limit 2 so that containers on the node reach the metadata service.
        MetadataOptions=ec2.MetadataOptions(HttpTokens="required", HttpEndpoint="enabled", HttpPutResponseHopLimit=2),
        BlockDeviceMappings=[ec2.LaunchTemplateBlockDeviceMapping(DeviceName=ROOT_DEVICE, Ebs=ec2.EBSBlockDevice(
            VolumeSize=Ref(names.P_ROOT_VOLUME_GB), VolumeType="gp3", Encrypted=True, DeleteOnTermination=True))],
        UserData=userdata(role),
        TagSpecifications=[ec2.TagSpecifications(ResourceType=kind, Tags=[{"Key": "Name", "Value": Sub("${AWS::StackName}-" + role)}])
                           for kind in ("instance", "volume")],
        **extra)
    return ec2.LaunchTemplate(title, LaunchTemplateData=data)


def _nodes_ready() -> cloudformation.WaitConditionHandle:
    """A no-op resource that depends on the optional network routes and EFS mount target, so
    that nodes boot after them when they exist (DependsOn cannot name conditional resources)."""
    return cloudformation.WaitConditionHandle(NODES_READY, Metadata={
        "PublicRoute": If(names.C_CREATE_NETWORK, Ref(names.PUBLIC_ROUTE), ""),
        "PrivateRoute": If(names.C_CREATE_NETWORK, Ref(names.PRIVATE_ROUTE), ""),
        "MountTarget": If(names.C_CREATE_FILE_SYSTEM, Ref(names.MOUNT_TARGET), ""),
    })


def add_compute(t: Template) -> None:
    ready = t.add_resource(_nodes_ready())
    master_lt = t.add_resource(_launch_template(names.MASTER_LAUNCH_TEMPLATE, MASTER, names.P_MASTER_TYPE))
    spot = ec2.InstanceMarketOptions(MarketType="spot", SpotOptions=ec2.SpotOptions(SpotInstanceType="one-time"))
    worker_lt = t.add_resource(_launch_template(
        names.WORKER_LAUNCH_TEMPLATE, WORKER, names.P_WORKER_TYPE, SecurityGroupIds=[GetAtt(names.NODE_SG, "GroupId")],
        InstanceMarketOptions=If(names.C_SPOT, spot, NoValue)))
    # ImageId and SubnetId sit on the instance too: moto reads them only there (AWS takes either).
    t.add_resource(ec2.Instance(
        names.MASTER_INSTANCE, DependsOn=[ready.title],
        LaunchTemplate=ec2.LaunchTemplateSpecification(LaunchTemplateId=Ref(master_lt),
                                                       Version=GetAtt(master_lt, "LatestVersionNumber")),
        ImageId=image_id(), InstanceType=Ref(names.P_MASTER_TYPE), SubnetId=public_subnet(),
        SecurityGroupIds=[GetAtt(names.MASTER_SG, "GroupId"), GetAtt(names.NODE_SG, "GroupId")]))
    pg = t.add_resource(ec2.PlacementGroup(names.PLACEMENT_GROUP, Condition=names.C_PLACEMENT_GROUP, Strategy="cluster"))
    # The subscription and permission come first: launch notices sent before them are lost.
    t.add_resource(autoscaling.AutoScalingGroup(
        names.WORKER_GROUP, DependsOn=[names.ASG_SUBSCRIPTION, names.ASG_PERMISSION, ready.title],
        AutoScalingGroupName=Sub(WORKER_GROUP_NAME),
        MinSize=Ref(names.P_MIN_WORKERS), MaxSize=Ref(names.P_WORKER_COUNT), DesiredCapacity=Ref(names.P_WORKER_COUNT),
        LaunchTemplate=autoscaling.LaunchTemplateSpecification(LaunchTemplateId=Ref(worker_lt),
                                                               Version=GetAtt(worker_lt, "LatestVersionNumber")),
        VPCZoneIdentifier=[private_subnet()],
        PlacementGroup=If(names.C_PLACEMENT_GROUP, Ref(pg), NoValue),
        NotificationConfigurations=[autoscaling.NotificationConfigurations(
            TopicARN=Ref(names.ASG_TOPIC), NotificationTypes=NOTIFICATIONS)],
        Tags=[autoscaling.Tag("Name", Sub("${AWS::StackName}-worker"), True)]))
