"""Notification builders and the group watcher that stands in for Auto Scaling -> SNS."""

from __future__ import annotations

import json

from dlcfn.node import events

from nodecluster import AZ, make_cluster


def messages(event: dict) -> list[dict]:
    return [json.loads(r["Sns"]["Message"]) for r in event["Records"]]


def test_sns_envelope_carries_the_autoscaling_message() -> None:
    event = events.launch("g", "i-1", AZ, "subnet-1")
    [record] = event["Records"]
    assert record["EventSource"] == "aws:sns" and record["Sns"]["Type"] == "Notification"
    [message] = messages(event)
    assert message["Event"] == events.LAUNCH and message["EC2InstanceId"] == "i-1"
    assert message["Details"] == {"Subnet ID": "subnet-1", "Availability Zone": AZ}


def test_launch_error_names_type_and_zone() -> None:
    [message] = messages(events.launch_error("g", "p4d.24xlarge", "us-west-2b", "subnet-2"))
    assert message["StatusCode"] == "Failed" and message["EC2InstanceId"] == ""
    assert "p4d.24xlarge" in message["StatusMessage"] and "(us-west-2b)" in message["StatusMessage"]


def test_watcher_reports_launches_then_terminations(aws) -> None:
    cluster = make_cluster(workers=2)
    asg = cluster.client("autoscaling")
    watcher = events.GroupWatcher(cluster.group, events.Origin())
    first = [m for e in watcher.poll(asg) for m in messages(e)]
    assert sorted(m["EC2InstanceId"] for m in first) == cluster.worker_ids()
    assert {m["Event"] for m in first} == {events.LAUNCH}
    assert watcher.poll(asg) == []  # nothing changed

    gone = cluster.worker_ids()[0]
    asg.terminate_instance_in_auto_scaling_group(InstanceId=gone, ShouldDecrementDesiredCapacity=True)
    changes = [(m["Event"], m["EC2InstanceId"]) for e in watcher.poll(asg) for m in messages(e)]
    assert changes == [(events.TERMINATE, gone)]
