"""What the node code receives and sends, stood up locally: Auto Scaling notifications wrapped
in SNS Lambda events (moto delivers none), and a receiver for WaitCondition signals (moto's
`Ref` of a WaitConditionHandle is None, which `Fn::Sub` renders as the text "None").

Used by the tests and by the embedded local cluster, which turns moto's group changes into
these events for `asg_monitor.handler` and points the wait handle URL at a `SignalReceiver`.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LAUNCH = "autoscaling:EC2_INSTANCE_LAUNCH"
LAUNCH_ERROR = "autoscaling:EC2_INSTANCE_LAUNCH_ERROR"
TERMINATE = "autoscaling:EC2_INSTANCE_TERMINATE"
TEST = "autoscaling:TEST_NOTIFICATION"


@dataclass(frozen=True)
class Origin:
    """Where the notifications come from: the account, region and SNS topic of the stack."""

    region: str = "us-east-1"
    account: str = "123456789012"
    topic: str = "AsgNotificationTopic"

    @property
    def topic_arn(self) -> str:
        return f"arn:aws:sns:{self.region}:{self.account}:{self.topic}"

    def group_arn(self, group: str) -> str:
        return f"arn:aws:autoscaling:{self.region}:{self.account}:autoScalingGroup:{uuid.uuid4()}:autoScalingGroupName/{group}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def notification(event: str, group: str, origin: Origin, **fields: Any) -> dict[str, Any]:
    """The JSON body Auto Scaling publishes to SNS (the fields the handler and humans read)."""
    body: dict[str, Any] = {
        "Origin": "EC2",
        "Destination": "AutoScalingGroup",
        "Progress": 50,
        "AccountId": origin.account,
        "RequestId": str(uuid.uuid4()),
        "ActivityId": str(uuid.uuid4()),
        "AutoScalingGroupName": group,
        "AutoScalingGroupARN": origin.group_arn(group),
        "Service": "AWS Auto Scaling",
        "Time": _now(),
        "StartTime": _now(),
        "EndTime": _now(),
        "Event": event,
        "EC2InstanceId": "",
        "StatusCode": "InProgress",
        "StatusMessage": "",
        "Cause": "",
        "Description": "",
        "Details": {},
    }
    body.update(fields)
    return body


def sns_event(*messages: dict[str, Any], origin: Origin | None = None) -> dict[str, Any]:
    """Wrap notification bodies the way SNS hands them to a Lambda: one record per message."""
    origin = origin or Origin()
    records = []
    for message in messages:
        records.append({
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": f"{origin.topic_arn}:{uuid.uuid4()}",
            "Sns": {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": origin.topic_arn,
                "Subject": f"Auto Scaling: {message['Event'].split(':')[-1]} for group \"{message['AutoScalingGroupName']}\"",
                "Message": json.dumps(message),
                "Timestamp": _now(),
                "SignatureVersion": "1",
                "Signature": "",
                "SigningCertUrl": "",
                "UnsubscribeUrl": "",
                "MessageAttributes": {},
            },
        })
    return {"Records": records}


def launch(group: str, instance_id: str, az: str, subnet: str, origin: Origin | None = None) -> dict[str, Any]:
    origin = origin or Origin()
    return sns_event(notification(
        LAUNCH, group, origin, EC2InstanceId=instance_id, StatusCode="InProgress",
        Description=f"Launching a new EC2 instance: {instance_id}",
        Cause="An instance was started in response to a difference between desired and actual capacity.",
        Details={"Subnet ID": subnet, "Availability Zone": az},
    ), origin=origin)


def launch_error(
    group: str, instance_type: str, az: str, subnet: str, error_code: str = "InsufficientInstanceCapacity",
    origin: Origin | None = None,
) -> dict[str, Any]:
    """A failed launch as Auto Scaling reports it: no instance id, the EC2 error as StatusMessage."""
    origin = origin or Origin()
    if error_code == "InsufficientInstanceCapacity":
        status = (
            f"We currently do not have sufficient {instance_type} capacity in the Availability Zone you "
            f"requested ({az}). Our system will be working on provisioning additional capacity."
        )
    else:
        status = f"{error_code}: launching a new {instance_type} instance failed."
    return sns_event(notification(
        LAUNCH_ERROR, group, origin, StatusCode="Failed", StatusMessage=status,
        Description=f"Launching a new EC2 instance.  Status Reason: {status} Launching EC2 instance failed.",
        Cause="An instance was started in response to a difference between desired and actual capacity.",
        Details={"Subnet ID": subnet, "Availability Zone": az},
    ), origin=origin)


def terminate(group: str, instance_id: str, az: str, subnet: str, origin: Origin | None = None) -> dict[str, Any]:
    origin = origin or Origin()
    return sns_event(notification(
        TERMINATE, group, origin, EC2InstanceId=instance_id, StatusCode="InProgress",
        Description=f"Terminating EC2 instance: {instance_id}",
        Cause="An instance was taken out of service in response to a user request.",
        Details={"Subnet ID": subnet, "Availability Zone": az},
    ), origin=origin)


def group_launch_events(autoscaling: Any, group: str, origin: Origin | None = None) -> list[dict[str, Any]]:
    """One launch event per instance the group has now (what SNS would have delivered)."""
    return GroupWatcher(group, origin or Origin()).poll(autoscaling)


@dataclass
class GroupWatcher:
    """Turns changes of a group's instance list into the notifications Auto Scaling would send.

    `poll` compares the group with what the last poll saw: a launch event per new instance, a
    terminate event per instance gone. The local cluster polls moto and feeds the handler.
    """

    group: str
    origin: Origin
    seen: dict[str, str] = field(default_factory=dict)  # instance id -> availability zone

    def poll(self, autoscaling: Any) -> list[dict[str, Any]]:
        found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])["AutoScalingGroups"]
        now = {i["InstanceId"]: i.get("AvailabilityZone", "") for i in (found[0]["Instances"] if found else [])}
        out = [terminate(self.group, iid, az, "", self.origin) for iid, az in sorted(self.seen.items()) if iid not in now]
        out += [launch(self.group, iid, az, "", self.origin) for iid, az in sorted(now.items()) if iid not in self.seen]
        self.seen = now
        return out


@dataclass(frozen=True)
class Signal:
    path: str
    content_type: str | None
    body: dict[str, Any]


class SignalReceiver:
    """A WaitCondition handle on 127.0.0.1: records every PUT signal, answers 200 like S3.

    Use as a context manager; `url` is what goes into WAIT_HANDLE_URL / wait_handle_url.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.signals: list[Signal] = []
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver._record(Signal(self.path, self.headers.get("Content-Type"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="signal-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/wait-handle?X-Amz-Signature=local"

    def _record(self, signal: Signal) -> None:
        with self._lock:
            self.signals.append(signal)
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[Signal]:
        """Block until `count` signals have arrived or `timeout` passes; return what arrived."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.signals) >= count, timeout=timeout)
            return list(self.signals)

    def __enter__(self) -> "SignalReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
