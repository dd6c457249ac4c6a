"""The stack event tail and the failure diagnosis.

`EventTail` returns each CloudFormation stack event once, oldest first, from the start of the
operation it watches; it also knows which resources are still in progress (what a timeout names).
`diagnose` picks the first failing resource of an operation and adds a hint for the failures users
hit most: no capacity, a quota, a missing key pair, a bad AMI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STACK_TYPE = "AWS::CloudFormation::Stack"
# Reasons CloudFormation gives to resources it stopped because another one failed: not the cause.
_KNOCK_ON = ("Resource creation cancelled", "Resource update cancelled", "cancelled")


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    timestamp: datetime
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""
    physical_id: str = ""

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> "StackEvent":
        return cls(
            event_id=raw["EventId"],
            timestamp=raw["Timestamp"],
            logical_id=raw.get("LogicalResourceId", ""),
            resource_type=raw.get("ResourceType", ""),
            status=raw.get("ResourceStatus", ""),
            reason=raw.get("ResourceStatusReason", "") or "",
            physical_id=raw.get("PhysicalResourceId", "") or "",
        )

    @property
    def is_stack(self) -> bool:
        return self.resource_type == STACK_TYPE

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


class EventTail:
    """Polls describe_stack_events and hands back only events not seen before."""

    def __init__(self, cfn: Any, stack: str) -> None:
        self._cfn = cfn
        self._stack = stack  # the stack id: it stays valid after a delete, the name does not
        self._seen: set[str] = set()
        self._latest: dict[str, StackEvent] = {}  # logical id -> its newest event
        self.history: list[StackEvent] = []

    def prime(self) -> None:
        """Mark every event already there as seen (before an update or a delete)."""
        for raw in self._pages():
            self._seen.add(raw["EventId"])

    def poll(self) -> list[StackEvent]:
        fresh: list[StackEvent] = []
        for raw in self._pages():
            if raw["EventId"] in self._seen:
                break  # pages are newest first: everything further back was seen already
            fresh.append(StackEvent.from_api(raw))
        fresh.reverse()
        for event in fresh:
            self._seen.add(event.event_id)
            self._latest[event.logical_id] = event
            self.history.append(event)
        return fresh

    def in_progress(self) -> list[StackEvent]:
        """Resources (not the stack itself) whose newest event is an *_IN_PROGRESS status."""
        return [e for e in self._latest.values() if e.status.endswith("_IN_PROGRESS") and not e.is_stack]

    def _pages(self) -> Any:
        token = None
        while True:
            kwargs = {"StackName": self._stack, **({"NextToken": token} if token else {})}
            page = self._cfn.describe_stack_events(**kwargs)
            yield from page.get("StackEvents", [])
            token = page.get("NextToken")
            if not token:
                return


class Cause(enum.Enum):
    CAPACITY = "capacity"
    QUOTA = "quota"
    KEY_PAIR = "key pair"
    AMI = "image"
    OTHER = "other"


# (cause, words any of which in the reason point to it, hint). Event reasons are free text written
# by each resource provider: there is no code to match, so this is a best-effort diagnosis only.
_RULES: list[tuple[Cause, tuple[str, ...], str]] = [
    (Cause.CAPACITY, ("insufficientinstancecapacity", "insufficient capacity", "not have sufficient", "capacity-not-available"),
     "AWS has no capacity for this instance type in this zone now: retry later, or pick another --availability-zone or --worker-type"),
    (Cause.QUOTA, ("vcpulimitexceeded", "limitexceeded", "quota", "maximum number"),
     "an account quota was reached: request more (Service Quotas, e.g. 'Running On-Demand P instances' vCPUs) or ask for fewer/smaller workers"),
    (Cause.KEY_PAIR, ("key pair", "keypair", "key_pair"),
     "the EC2 key pair does not exist in this region: `aws ec2 import-key-pair --key-name NAME --public-key-material fileb://~/.ssh/id_ed25519.pub` or pass an existing --key-name"),
    (Cause.AMI, ("invalidamiid", "ami", "image id", "imageid"),
     "the AMI is not available in this region: pass --image-id of an AMI that exists here, or keep the default SSM parameter"),
]


@dataclass(frozen=True)
class Diagnosis:
    event: StackEvent
    cause: Cause
    hint: str

    def render(self) -> str:
        e = self.event
        return f"{e.logical_id} ({e.resource_type}) {e.status}: {e.reason or 'no reason given'}"


def classify(reason: str) -> tuple[Cause, str]:
    low = reason.lower()
    for cause, words, hint in _RULES:
        if any(w in low for w in words):
            return cause, hint
    return Cause.OTHER, "see the events above, or `aws cloudformation describe-stack-events`"


def diagnose(events: list[StackEvent]) -> Diagnosis | None:
    """The first failing resource (not a knock-on cancellation), else the stack's own failure."""
    failures = [e for e in events if e.failed]
    causes = [e for e in failures if not e.is_stack and not any(k in e.reason for k in _KNOCK_ON)]
    chosen = (causes or [e for e in failures if not e.is_stack] or failures or [None])[0]
    if chosen is None:
        rollbacks = [e for e in events if e.is_stack and "ROLLBACK" in e.status and e.reason]
        if not rollbacks:
            return None
        chosen = rollbacks[0]
    cause, hint = classify(chosen.reason)
    return Diagnosis(event=chosen, cause=cause, hint=hint)
