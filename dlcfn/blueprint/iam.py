"""IAM, built with awacs: the node role + instance profile and the ASG-monitor Lambda role.

Every statement names this stack's own resources (queue ARNs, the worker group's ARN pattern,
the Lambda's log groups) except the describe calls that AWS grants only on "*".
"""

from __future__ import annotations

from awacs import autoscaling, ec2 as ec2_actions, logs, sqs as sqs_actions, sts
from awacs.aws import Allow, PolicyDocument, Principal, Statement
from troposphere import GetAtt, Ref, Sub, Template, iam

from dlcfn.blueprint import names

# The worker group has a fixed name so that this role can name it without referring to the
# group (the group depends on the Lambda's subscription, so a Ref here would be a cycle).
WORKER_GROUP_NAME = "${AWS::StackName}-workers"
WORKER_GROUP_ARN = ("arn:${AWS::Partition}:autoscaling:${AWS::Region}:${AWS::AccountId}:autoScalingGroup:*:"
                    "autoScalingGroupName/" + WORKER_GROUP_NAME)
LAMBDA_LOGS_ARN = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-*"


def _assume(service: str) -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=[
        Statement(Effect=Allow, Principal=Principal("Service", [service]), Action=[sts.AssumeRole])])


def _queue_arns() -> list[GetAtt]:
    return [GetAtt(names.MASTER_QUEUE, "Arn"), GetAtt(names.WORKER_QUEUE, "Arn")]


def node_policy() -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=[
        Statement(Sid="DiscoveryQueues", Effect=Allow, Resource=_queue_arns(), Action=[
            sqs_actions.SendMessage, sqs_actions.ReceiveMessage, sqs_actions.DeleteMessage,
            sqs_actions.ChangeMessageVisibility, sqs_actions.GetQueueAttributes]),
        # Describe calls exist only on "*" in IAM.
        Statement(Sid="DescribeCluster", Effect=Allow, Resource=["*"], Action=[
            autoscaling.DescribeAutoScalingGroups, ec2_actions.DescribeInstances]),
    ])


def monitor_policy() -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=[
        Statement(Sid="Logs", Effect=Allow, Resource=[Sub(LAMBDA_LOGS_ARN), Sub(LAMBDA_LOGS_ARN + ":*")],
                  Action=[logs.CreateLogGroup, logs.CreateLogStream, logs.PutLogEvents]),
        Statement(Sid="PostReady", Effect=Allow, Resource=[GetAtt(names.MASTER_QUEUE, "Arn")], Action=[sqs_actions.SendMessage]),
        Statement(Sid="AdjustWorkerGroup", Effect=Allow, Resource=[Sub(WORKER_GROUP_ARN)], Action=[
            autoscaling.UpdateAutoScalingGroup, autoscaling.SetDesiredCapacity, autoscaling.SuspendProcesses,
            autoscaling.CreateOrUpdateTags]),
        Statement(Sid="Describe", Effect=Allow, Resource=["*"], Action=[
            autoscaling.DescribeAutoScalingGroups, ec2_actions.DescribeLaunchTemplateVersions]),
    ])


def add_iam(t: Template) -> None:
    role = t.add_resource(iam.Role(names.INSTANCE_ROLE, AssumeRolePolicyDocument=_assume("ec2.amazonaws.com"),
                                   Policies=[iam.Policy(PolicyName="dlcfn-node", PolicyDocument=node_policy())]))
    t.add_resource(iam.InstanceProfile(names.INSTANCE_PROFILE, Roles=[Ref(role)]))
    t.add_resource(iam.Role(names.LAMBDA_ROLE, AssumeRolePolicyDocument=_assume("lambda.amazonaws.com"),
                            Policies=[iam.Policy(PolicyName="dlcfn-asg-monitor", PolicyDocument=monitor_policy())]))
