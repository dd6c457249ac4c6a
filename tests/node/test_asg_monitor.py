"""The ASG-monitor Lambda handler, in-process against moto: real group, instances and queues;
its FAILURE signal goes over HTTP to a local wait handle."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from moto.autoscaling import autoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID

from dlcfn.node import asg_monitor, events
from dlcfn.node.events import SignalReceiver

from nodecluster import AZ, REGION, WORKER_TYPE, MotoCluster, make_cluster

SOURCE = Path(asg_monitor.__file__)


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, receiver: SignalReceiver):
    """The function's environment as the stack set it; only the wait handle is local."""

    def configure(cluster: MotoCluster) -> None:
        assert cluster.lambda_env["MASTER_QUEUE_URL"] == cluster.master_queue_url
        for key, value in {**cluster.lambda_env, "WAIT_HANDLE_URL": receiver.url}.items():
            monkeypatch.setenv(key, value)

    return configure


@pytest.fixture(params=["module", "inline"])
def monitor(request: pytest.FixtureRequest) -> Callable[[MotoCluster], ModuleType]:
    """The handler as a module, and as the stack inlines it (minified ZipFile code, run as is)."""

    def load(cluster: MotoCluster) -> ModuleType:
        if request.param == "module":
            return asg_monitor
        inline = ModuleType("index")  # Handler "index.handler"
        exec(compile(cluster.lambda_source, "index.py", "exec"), inline.__dict__)
        return inline

    return load


def decisions(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    """The handler's log: one JSON object per line, each with a decision."""
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    assert all("decision" in p for p in parsed)
    return parsed


def deliver_launches(cluster: MotoCluster, handler: ModuleType) -> None:
    for event in events.group_launch_events(cluster.client("autoscaling"), cluster.group):
        handler.handler(event, None)


def fail_launches(cluster: MotoCluster, count: int) -> None:
    """Leave the group wanting `count` more instances than it has, as after failed launches.

    moto launches every instance it is asked for, so: detach `count` instances (real API,
    desired capacity drops with them), terminate them, then put the desired capacity back on
    moto's group record; moto's own API would launch replacements, which a failed launch is not.
    """
    asg = cluster.client("autoscaling")
    wanted = cluster.group_info()["DesiredCapacity"]
    gone = cluster.worker_ids()[:count]
    asg.detach_instances(InstanceIds=gone, AutoScalingGroupName=cluster.group, ShouldDecrementDesiredCapacity=True)
    cluster.client("ec2").terminate_instances(InstanceIds=gone)
    autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION].autoscaling_groups[cluster.group].desired_capacity = wanted


def test_all_launched_posts_asg_ready_once(aws, monitor, lambda_env, capsys) -> None:
    cluster = make_cluster(workers=3, min_workers=2)
    lambda_env(cluster)
    handler = monitor(cluster)
    deliver_launches(cluster, handler)

    [message] = cluster.messages(cluster.master_queue_url)
    assert message == {"type": "asg-ready", "group": cluster.group, "count": 3, "instances": cluster.worker_ids()}
    tags = {t["Key"]: t["Value"] for t in cluster.group_info()["Tags"]}
    assert tags[handler.READY_TAG] == "3"
    log = decisions(capsys)
    assert [d["decision"] for d in log] == ["asg-ready-posted", "already-posted", "already-posted"]


def test_waits_until_every_desired_instance_is_healthy(aws, monitor, lambda_env, capsys) -> None:
    cluster = make_cluster(workers=3, min_workers=2)
    lambda_env(cluster)
    handler = monitor(cluster)
    asg = cluster.client("autoscaling")
    sick = cluster.worker_ids()[0]
    asg.set_instance_health(InstanceId=sick, HealthStatus="Unhealthy")
    deliver_launches(cluster, handler)
    assert cluster.messages(cluster.master_queue_url) == []
    assert {d["decision"] for d in decisions(capsys)} == {"waiting"}

    asg.set_instance_health(InstanceId=sick, HealthStatus="Healthy")
    handler.handler(events.launch(cluster.group, sick, AZ, cluster.subnet), None)
    [message] = cluster.messages(cluster.master_queue_url)
    assert message["count"] == 3


def test_launch_notice_before_in_service_counts_the_instance(aws, monitor, lambda_env) -> None:
    """Auto Scaling may publish the launch before the group lists the instance InService."""
    cluster = make_cluster(workers=2, min_workers=2)
    lambda_env(cluster)
    handler = monitor(cluster)
    first, second = cluster.worker_ids()
    # moto puts instances InService at once: set the state the API would show for a moment.
    group = autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION].autoscaling_groups[cluster.group]
    next(s for s in group.instance_states if s.instance.id == second).lifecycle_state = "Pending"
    handler.handler(events.launch(cluster.group, second, AZ, cluster.subnet), None)
    [message] = cluster.messages(cluster.master_queue_url)
    assert message["instances"] == [first, second]


def test_duplicate_and_reordered_notifications_post_once(aws, monitor, lambda_env, capsys) -> None:
    cluster = make_cluster(workers=2, min_workers=1)
    lambda_env(cluster)
    handler = monitor(cluster)
    first, second = cluster.worker_ids()
    launch_second = events.launch(cluster.group, second, AZ, cluster.subnet)
    launch_first = events.launch(cluster.group, first, AZ, cluster.subnet)
    # SNS delivers at least once and in any order: the second launch first, then twice more.
    for event in (launch_second, launch_first, launch_second, launch_first):
        handler.handler(event, None)
    # A batch holding both records is the same story.
    handler.handler({"Records": launch_first["Records"] + launch_second["Records"]}, None)

    assert len(cluster.messages(cluster.master_queue_url)) == 1
    assert [d["decision"] for d in decisions(capsys)] == ["asg-ready-posted"] + ["already-posted"] * 5


def test_launch_error_above_min_workers_proceeds_with_fewer(aws, monitor, lambda_env, capsys) -> None:
    cluster = make_cluster(workers=4, min_workers=2)
    lambda_env(cluster)
    handler = monitor(cluster)
    fail_launches(cluster, 1)
    error = events.launch_error(cluster.group, WORKER_TYPE, AZ, cluster.subnet)
    handler.handler(error, None)
    handler.handler(error, None)  # delivered twice
    deliver_launches(cluster, handler)

    group = cluster.group_info()
    assert group["DesiredCapacity"] == 3
    assert {p["ProcessName"] for p in group["SuspendedProcesses"]} >= {"ReplaceUnhealthy", "AZRebalance"}
    assert len(group["Instances"]) == 3  # lowering the capacity terminated nothing
    [message] = cluster.messages(cluster.master_queue_url)
    assert message["count"] == 3 and message["instances"] == cluster.worker_ids()
    log = decisions(capsys)
    assert [d["decision"] for d in log[:2]] == ["capacity-lowered", "asg-ready-posted"]
    assert log[0]["desired"] == 3 and log[0]["was"] == 4
    assert {d["decision"] for d in log[2:]} == {"already-posted"}


def test_launch_error_below_min_workers_signals_failure(aws, monitor, lambda_env, receiver, capsys) -> None:
    cluster = make_cluster(workers=3, min_workers=3)
    lambda_env(cluster)
    handler = monitor(cluster)
    fail_launches(cluster, 2)
    handler.handler(events.launch_error(cluster.group, WORKER_TYPE, AZ, cluster.subnet), None)

    [signal] = receiver.wait_for(1, timeout=10)
    assert signal.content_type == ""  # a presigned S3 URL's signature covers an empty type
    assert signal.body["Status"] == "FAILURE"
    reason = signal.body["Reason"]
    assert cluster.group in reason and "1 of 3 instances launched" in reason and "MinWorkers is 3" in reason
    assert WORKER_TYPE in reason and AZ in reason and "sufficient p3.8xlarge capacity" in reason
    assert cluster.group_info()["DesiredCapacity"] == 3  # nothing lowered: the stack is failing
    assert cluster.messages(cluster.master_queue_url) == []
    [log] = decisions(capsys)
    assert log["decision"] == "failure-signalled" and log["launched"] == 1


def test_failure_reason_names_the_type_when_nothing_launched(aws, monitor, lambda_env, receiver) -> None:
    cluster = make_cluster(workers=2, min_workers=1)
    lambda_env(cluster)
    handler = monitor(cluster)
    fail_launches(cluster, 2)
    handler.handler(
        events.launch_error(cluster.group, WORKER_TYPE, AZ, cluster.subnet, error_code="VcpuLimitExceeded"), None
    )
    [signal] = receiver.wait_for(1, timeout=10)
    # No instance to read the type from: it comes from the group's launch template.
    assert WORKER_TYPE in signal.body["Reason"] and "VcpuLimitExceeded" in signal.body["Reason"]


def test_terminate_before_and_after_ready(aws, monitor, lambda_env, capsys) -> None:
    cluster = make_cluster(workers=2, min_workers=1)
    lambda_env(cluster)
    handler = monitor(cluster)
    asg = cluster.client("autoscaling")
    first, second = cluster.worker_ids()
    asg.set_instance_health(InstanceId=second, HealthStatus="Unhealthy")
    handler.handler(events.terminate(cluster.group, second, AZ, cluster.subnet), None)
    assert cluster.messages(cluster.master_queue_url) == []

    asg.set_instance_health(InstanceId=second, HealthStatus="Healthy")
    deliver_launches(cluster, handler)
    handler.handler(events.terminate(cluster.group, first, AZ, cluster.subnet), None)
    assert len(cluster.messages(cluster.master_queue_url)) == 1
    log = decisions(capsys)
    assert log[0]["decision"] == "waiting" and log[0]["event"] == events.TERMINATE
    assert log[-1]["decision"] == "already-posted" and log[-1]["instance"] == first


def test_unknown_group_and_test_notification_are_ignored(aws, monitor, lambda_env, capsys) -> None:
    cluster = make_cluster(workers=1, min_workers=1)
    lambda_env(cluster)
    handler = monitor(cluster)
    origin = events.Origin()
    handler.handler(events.sns_event(events.notification(events.TEST, "no-such-group", origin)), None)
    assert cluster.messages(cluster.master_queue_url) == []
    assert [d["decision"] for d in decisions(capsys)] == ["ignored"]


def stripped_source() -> str:
    """What the template inlines: the source without docstrings and comments."""
    tree = ast.parse(SOURCE.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def test_inline_source_fits_cloudformation_zipfile_limit() -> None:
    assert len(stripped_source()) < 4096


def test_handler_imports_only_stdlib_and_boto3() -> None:
    tree = ast.parse(SOURCE.read_text())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= {"json", "os", "urllib", "boto3"}


def test_fifo_queue_drops_a_concurrent_duplicate(aws, monitor, lambda_env) -> None:
    """Two invocations racing past the tag check: a FIFO master queue keeps one message."""
    cluster = make_cluster(workers=2, min_workers=1, fifo=True)
    assert cluster.master_queue_url.endswith(".fifo")
    lambda_env(cluster)
    handler = monitor(cluster)
    deliver_launches(cluster, handler)
    # The second invocation read the group before the first tagged it: emulate by untagging.
    cluster.client("autoscaling").delete_tags(Tags=[{
        "ResourceId": cluster.group, "ResourceType": "auto-scaling-group", "Key": asg_monitor.READY_TAG}])
    deliver_launches(cluster, handler)
    assert len(cluster.messages(cluster.master_queue_url)) == 1
