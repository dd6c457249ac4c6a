"""ASG monitor: the Lambda that follows the worker Auto Scaling group through SNS notifications.

Shipped inline as the Lambda's ZipFile, so it is one self-contained file (stdlib + boto3).
Every notification triggers a fresh look at the group (not a count of events), so duplicate
and re-ordered notifications give the same answer. When every desired instance is launched
(Pending or InService) and Healthy it posts one `asg-ready` message to the master queue (a
launch notice may arrive before the group shows its instance InService; the master waits for
each listed instance's hello anyway) and tags the group
`dlcfn:asg-ready=<count>`; the tag is the "already posted" state. On a launch error it keeps
the instances that launched if there are at least MIN_WORKERS of them (lowers the desired
capacity, suspends replacement), else it signals the stack's WaitCondition FAILURE.
Env: MASTER_QUEUE_URL, WAIT_HANDLE_URL, MIN_WORKERS. One JSON log line per decision.
"""

import json
import os
import urllib.request

import boto3

READY_TAG = "dlcfn:asg-ready"
LIVE = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
# Replacing or rebalancing instances would change the membership the master already wrote.
SUSPEND = ["ReplaceUnhealthy", "AZRebalance"]


def log(decision, **fields):
    print(json.dumps(dict(decision=decision, **fields), sort_keys=True))


def signal_failure(url, reason, unique_id):
    """PUT a WaitCondition signal; Content-Type must be empty for the presigned S3 URL."""
    body = json.dumps(dict(Status="FAILURE", Reason=reason, UniqueId=unique_id, Data="")).encode()
    req = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})
    urllib.request.urlopen(req, timeout=30).close()


def instance_type(group):
    types = [i["InstanceType"] for i in group["Instances"] if i.get("InstanceType")]
    spec = group.get("LaunchTemplate")
    if types or not spec:
        return (types or ["unknown type"])[0]
    version = boto3.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=spec["LaunchTemplateId"], Versions=[spec.get("Version", "$Default")]
    )["LaunchTemplateVersions"][0]
    return version["LaunchTemplateData"].get("InstanceType", "unknown type")


def post_ready(asg, group, ready):
    name = group["AutoScalingGroupName"]
    ids = sorted(i["InstanceId"] for i in ready)
    url, key = os.environ["MASTER_QUEUE_URL"], "asg-ready-" + name
    # A FIFO queue drops a concurrent duplicate (same dedup id within five minutes).
    fifo = dict(MessageGroupId=key, MessageDeduplicationId=key) if url.endswith(".fifo") else {}
    body = json.dumps(dict(type="asg-ready", group=name, count=len(ids), instances=ids))
    # Post first, tag second: a crash in between re-posts (consumers dedup), never loses it.
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody=body, **fifo)
    asg.create_or_update_tags(
        Tags=[dict(ResourceId=name, ResourceType="auto-scaling-group", Key=READY_TAG,
                   Value=str(len(ids)), PropagateAtLaunch=False)]
    )
    log("asg-ready-posted", group=name, count=len(ids), instances=ids)


def launch_error(asg, group, live, msg):
    name, minimum = group["AutoScalingGroupName"], int(os.environ["MIN_WORKERS"])
    if len(live) < minimum:
        az = (msg.get("Details") or {}).get("Availability Zone", "unknown AZ")
        reason = "%s: %d of %d instances launched, MinWorkers is %d; %s in %s: %s" % (
            name, len(live), group["DesiredCapacity"], minimum, instance_type(group), az,
            msg.get("StatusMessage") or msg.get("Description"))
        signal_failure(os.environ["WAIT_HANDLE_URL"], reason[:2000], "asg-monitor")
        log("failure-signalled", group=name, launched=len(live), reason=reason)
        return False
    if len(live) < group["DesiredCapacity"]:
        asg.update_auto_scaling_group(AutoScalingGroupName=name, DesiredCapacity=len(live),
                                      MinSize=min(group["MinSize"], len(live)))
        asg.suspend_processes(AutoScalingGroupName=name, ScalingProcesses=SUSPEND)
        log("capacity-lowered", group=name, desired=len(live), was=group["DesiredCapacity"])
        group["DesiredCapacity"] = len(live)
    return True


def handle(asg, msg):
    event, name = msg.get("Event", ""), msg.get("AutoScalingGroupName")
    groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"] if name else []
    if not groups:
        return log("ignored", event=event, group=name)
    group = groups[0]
    posted = [t["Value"] for t in group.get("Tags", []) if t["Key"] == READY_TAG]
    if posted:
        # A terminate after the post is logged only: the cluster files are already written.
        return log("already-posted", event=event, group=name, count=posted[0],
                   instance=msg.get("EC2InstanceId", ""))
    live = [i for i in group["Instances"] if i["LifecycleState"] in LIVE and i["HealthStatus"] == "Healthy"]
    if event.endswith("LAUNCH_ERROR") and not launch_error(asg, group, live, msg):
        return None
    if group["DesiredCapacity"] > 0 and len(live) >= group["DesiredCapacity"]:
        return post_ready(asg, group, live)
    return log("waiting", event=event, group=name, ready=len(live), desired=group["DesiredCapacity"])


def handler(event, context):
    asg = boto3.client("autoscaling")
    for record in event.get("Records", []):
        handle(asg, json.loads(record["Sns"]["Message"]))
