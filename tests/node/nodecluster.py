"""The cluster stack the node tests stand on: rendered by the blueprint for moto and created in
moto (moto models no WaitCondition: its `Ref` of the handle is None, which Fn::Sub writes as
"None", so tests point the node code at a local `SignalReceiver`).

What the node code reads comes from the stack itself: the Lambda's environment from the
function moto created, the bootstrap's config from the UserData moto rendered into the launch
templates; tests replace only the wait handle URL, the root directory and the timeouts."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field

import boto3

from dlcfn.blueprint import names
from dlcfn.blueprint.render import Target, template_dict
from dlcfn.spec.cluster import ClusterSpec

REGION = "us-east-1"
AZ = "us-east-1a"  # the blueprint's moto target puts the cluster in <region>a
STACK = "dl"
WORKER_TYPE = "p3.8xlarge"
AMI = "ami-12c6146b"  # an image moto knows
AMI_PARAMETER = "/dlcfn/test/ami"  # moto reserves /aws/..., so the test spec names its own


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
    file_system_id: str
    lambda_env: dict[str, str] = field(default_factory=dict)  # the function's, as the stack set it
    userdata: dict[str, str] = field(default_factory=dict)  # role -> UserData script, after Fn::Sub
    lambda_source: str = ""  # the function's inline code (ZipFile) in the template

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

    def node_config(self, role: str) -> dict:
        """The config.json the role's UserData writes for bootstrap.py."""
        script = self.userdata[role]
        return json.loads(re.search(r"<<'DLCFN_CONFIG'[^\n]*\n(.*?)\nDLCFN_CONFIG\n", script, re.S).group(1))

    def shipped_bootstrap(self, role: str) -> bytes:
        """The bootstrap.py the role's UserData unpacks on the node."""
        import gzip

        blob = re.search(r"<<'DLCFN_BOOTSTRAP'[^\n]*\n(.*?)\nDLCFN_BOOTSTRAP\n", self.userdata[role], re.S).group(1)
        return gzip.decompress(base64.b64decode(blob))


def cluster_spec(workers: int, min_workers: int) -> ClusterSpec:
    return ClusterSpec(
        workers=workers, min_workers=min_workers, worker_type=WORKER_TYPE, master_type="p3.2xlarge",
        image_id=AMI, ami_ssm_parameter=AMI_PARAMETER, ssh_cidr="203.0.113.0/24", region=REGION,
    )


def cluster_template(spec: ClusterSpec, fifo: bool) -> str:
    template = template_dict(spec, Target.MOTO)
    if fifo:
        # The same stack with FIFO discovery queues (moto needs the .fifo name spelled out).
        for logical_id, role in ((names.MASTER_QUEUE, "master"), (names.WORKER_QUEUE, "worker")):
            template["Resources"][logical_id]["Properties"].update(
                FifoQueue=True, QueueName={"Fn::Sub": "${AWS::StackName}-%s.fifo" % role}
            )
    return json.dumps(template)


def make_cluster(workers: int, min_workers: int = 1, fifo: bool = False) -> MotoCluster:
    """Create the cluster stack in moto and find the node-facing resources by logical ID."""
    spec = cluster_spec(workers, min_workers)
    body = cluster_template(spec, fifo)
    boto3.client("ssm", region_name=REGION).put_parameter(Name=AMI_PARAMETER, Value=AMI, Type="String")
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in spec.parameters().items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId")
        for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        if "LogicalResourceId" in r  # moto lists the resources it does not model without one
    }
    ec2 = boto3.client("ec2", region_name=REGION)
    master = ec2.describe_instances(InstanceIds=[physical[names.MASTER_INSTANCE]])["Reservations"][0]["Instances"][0]
    function = boto3.client("lambda", region_name=REGION).get_function_configuration(
        FunctionName=physical[names.ASG_MONITOR_FUNCTION]
    )
    userdata = {}
    for role, logical_id in (("master", names.MASTER_LAUNCH_TEMPLATE), ("worker", names.WORKER_LAUNCH_TEMPLATE)):
        version = ec2.describe_launch_template_versions(LaunchTemplateId=physical[logical_id])["LaunchTemplateVersions"][0]
        userdata[role] = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
    return MotoCluster(
        stack_name=STACK,
        group=physical[names.WORKER_GROUP],
        subnet=master["SubnetId"],
        master_id=master["InstanceId"],
        master_ip=master["PrivateIpAddress"],
        master_queue_url=physical[names.MASTER_QUEUE],
        worker_queue_url=physical[names.WORKER_QUEUE],
        file_system_id=physical[names.FILE_SYSTEM],
        lambda_env={k: str(v) for k, v in function.get("Environment", {}).get("Variables", {}).items()},
        userdata=userdata,
        lambda_source=json.loads(body)["Resources"][names.ASG_MONITOR_FUNCTION]["Properties"]["Code"]["ZipFile"],
    )
