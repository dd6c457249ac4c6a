"""The CloudFormation stack lifecycle: create, wait (with the event tail), update through a change
set, delete. Stack states live in the named sets below, never in scattered string compares.

Waiting polls describe_stacks and the event tail itself (not boto3's waiters) so that every event
is reported as it happens, a timeout can say what was still in progress, and the first poll comes
quickly (a moto stack is complete as soon as create_stack returns).
"""

from __future__ import annotations

import enum
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dlcfn.aws.events import Diagnosis, EventTail, StackEvent, diagnose
from dlcfn.aws.session import AwsSession, NoChanges, StackNotFound, aws_errors
from dlcfn.blueprint.names import CLUSTER_TAG
from dlcfn.errors import DlcfnError, Finding, Interrupted

IN_PROGRESS = frozenset({
    "CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "DELETE_IN_PROGRESS", "UPDATE_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "REVIEW_IN_PROGRESS", "IMPORT_IN_PROGRESS",
    "IMPORT_ROLLBACK_IN_PROGRESS",
})
FAILED = frozenset({
    "CREATE_FAILED", "ROLLBACK_FAILED", "ROLLBACK_COMPLETE", "DELETE_FAILED", "UPDATE_FAILED",
    "UPDATE_ROLLBACK_FAILED", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE",
})
COMPLETE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"})
# A stack in these states can be used (status, ssh, submit) even if its last update failed.
USABLE = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})

# CloudFormation stack names: a letter, then letters, digits and hyphens, at most 128 characters.
# dlcfn also uses the name as a directory name, which these rules already make safe.
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
TEMPLATE_BODY_LIMIT = 51_200  # bytes; larger templates must come from S3


def template_bucket(account: str, region: str, name: str) -> str:
    """The S3 bucket a too-large template of stack `name` is staged in: one name per account,
    region and stack, so that `delete-stack`'s sweep finds one left by an interrupted call."""
    return "dlcfn-template-" + hashlib.sha256(f"{account}:{region}:{name}".encode()).hexdigest()[:32]
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]  # the template creates scoped IAM roles


class Operation(enum.Enum):
    CREATE = "CREATE_COMPLETE"
    UPDATE = "UPDATE_COMPLETE"
    DELETE = "DELETE_COMPLETE"

    @property
    def verb(self) -> str:
        return self.name.lower()


def check_stack_name(name: str, path: str = "NAME") -> list[Finding]:
    if _STACK_NAME.match(name):
        return []
    return [Finding(path, f"{name!r} is not a valid cluster name: start with a letter, then letters, digits or '-', at most 128 characters")]


@dataclass
class Clock:
    """Time source of the waits; tests pass a fake one so that timeouts need no sleeping."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass
class WaitPolicy:
    timeout_s: float = 3600.0
    first_poll_s: float = 0.05  # a moto stack is done at once; AWS needs seconds: back off to max_poll_s
    max_poll_s: float = 5.0
    clock: Clock = field(default_factory=Clock)


@dataclass
class WaitResult:
    stack_id: str
    status: str
    reason: str
    events: list[StackEvent]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return self.status in COMPLETE


class StackFailed(DlcfnError):
    def __init__(self, name: str, op: Operation, result: WaitResult, diagnosis: Diagnosis | None) -> None:
        what = diagnosis.render() if diagnosis else (result.reason or "no reason given")
        super().__init__(f"stack {name!r} {op.verb} failed ({result.status}): {what}", hint=diagnosis.hint if diagnosis else "")
        self.result = result
        self.diagnosis = diagnosis


class StackTimeout(DlcfnError):
    pass


@dataclass
class ChangeSummary:
    """What an update will do: parameter changes (ours) and resource changes (CloudFormation's)."""

    change_set_id: str
    parameters: list[tuple[str, str, str]]  # (key, old, new)
    resources: list[tuple[str, str, str, str]]  # (action, logical id, type, replacement)

    def lines(self) -> list[str]:
        out = [f"  parameter {k}: {old} -> {new}" for k, old, new in self.parameters]
        out += [f"  {action} {lid} ({rtype}){' replacement: ' + rep if rep else ''}" for action, lid, rtype, rep in self.resources]
        return out or ["  (no changes)"]


EventSink = Callable[[StackEvent], None]


class Stacks:
    """CloudFormation operations on the cluster stacks of one account and region."""

    def __init__(self, session: AwsSession) -> None:
        self.session = session
        self.cfn = session.client("cloudformation")

    def describe(self, name: str) -> dict[str, Any]:
        """The stack record; StackNotFound when there is none."""
        with aws_errors(f"describe stack {name!r}"):
            return dict(self.cfn.describe_stacks(StackName=name)["Stacks"][0])

    def find(self, name: str) -> dict[str, Any] | None:
        try:
            return self.describe(name)
        except StackNotFound:
            return None

    def list_clusters(self) -> list[dict[str, Any]]:
        """Every live stack carrying the dlcfn:cluster tag."""
        with aws_errors("list stacks"):
            stacks = [s for page in self.cfn.get_paginator("describe_stacks").paginate() for s in page["Stacks"]]
        return [s for s in stacks if any(t["Key"] == CLUSTER_TAG for t in s.get("Tags", [])) and s["StackStatus"] != "DELETE_COMPLETE"]

    @contextmanager
    def template_source(self, name: str, body: str) -> Iterator[dict[str, str]]:
        """The template argument of a CloudFormation call: TemplateBody when it fits the 51,200-byte
        inline limit; else TemplateURL of a copy staged in this stack's own bucket
        (template_bucket) for the duration of the block, then deleted with its bucket:
        CloudFormation has read the template by then, and nothing is left behind."""
        data = body.encode()
        if len(data) <= TEMPLATE_BODY_LIMIT:
            yield {"TemplateBody": body}
            return
        s3, region = self.session.client("s3"), self.session.region
        with aws_errors(f"stage the {len(data)}-byte template of {name!r} in S3 (over the {TEMPLATE_BODY_LIMIT}-byte inline limit)"):
            bucket = template_bucket(self.session.client("sts").get_caller_identity()["Account"], region, name)
            where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            try:
                s3.create_bucket(Bucket=bucket, **where)
            except s3.exceptions.BucketAlreadyOwnedByYou:  # left by an interrupted call: reuse it
                pass
        try:
            with aws_errors(f"stage the template of {name!r} in S3"):
                s3.put_object(Bucket=bucket, Key="template.json", Body=data)
            domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
            yield {"TemplateURL": f"https://{bucket}.s3.{region}.{domain}/template.json"}
        finally:
            try:
                delete_template_bucket(s3, bucket)
            except Exception:  # noqa: BLE001 - the call's own outcome matters more; delete-stack sweeps it
                pass

    def create(self, name: str, template_body: str, parameters: dict[str, str], *, rollback: bool = True) -> str:
        with self.template_source(name, template_body) as template, aws_errors(f"create stack {name!r}"):
            resp = self.cfn.create_stack(
                StackName=name,
                **template,
                Parameters=_parameters(parameters),
                Capabilities=CAPABILITIES,
                Tags=[{"Key": CLUSTER_TAG, "Value": name}],  # CloudFormation propagates stack tags to resources
                DisableRollback=not rollback,
            )
        return str(resp["StackId"])

    def wait(self, name: str, stack_id: str, op: Operation, tail: EventTail, policy: WaitPolicy, on_event: EventSink) -> WaitResult:
        """Poll until the stack leaves IN_PROGRESS; report each new event; raise on failure/timeout."""
        try:
            return self._wait(name, stack_id, op, tail, policy, on_event)
        except KeyboardInterrupt as e:
            # Ctrl-C stops the watching only: CloudFormation carries on, and the user must know.
            raise Interrupted(f"stopped watching; stack {name!r} {op.verb} goes on in AWS",
                              hint=f"watch it with `dlcfn status {name}` or remove it with `dlcfn delete-stack {name}`") from e

    def _wait(self, name: str, stack_id: str, op: Operation, tail: EventTail, policy: WaitPolicy, on_event: EventSink) -> WaitResult:
        clock = policy.clock
        start = clock.monotonic()
        delay = policy.first_poll_s
        while True:
            with aws_errors(f"watch stack {name!r}"):
                for event in tail.poll():
                    on_event(event)
                stack = self.cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
            status = stack["StackStatus"]
            elapsed = clock.monotonic() - start
            if status not in IN_PROGRESS:
                with aws_errors(f"watch stack {name!r}"):
                    for event in tail.poll():  # the events that arrived with the final status
                        on_event(event)
                result = WaitResult(stack_id, status, stack.get("StackStatusReason", ""), tail.history, elapsed)
                if status != op.value:
                    raise StackFailed(name, op, result, diagnose(tail.history))
                return result
            if elapsed >= policy.timeout_s:
                raise _timeout(name, op, status, tail, policy.timeout_s)
            clock.sleep(min(delay, max(policy.timeout_s - elapsed, 0.0)))
            delay = min(delay * 2, policy.max_poll_s)

    def plan_update(self, name: str, template_body: str, parameters: dict[str, str | None], policy: WaitPolicy) -> ChangeSummary:
        """Create a change set and wait until CloudFormation has computed it. NoChanges if empty.

        A parameter whose value is None keeps its previous value (UsePreviousValue: on AWS that
        also keeps an SSM-typed parameter's path rather than the AMI id it resolved to)."""
        stack = self.describe(name)
        old = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        change_name = "dlcfn-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
        with self.template_source(name, template_body) as template, aws_errors(f"plan update of {name!r}"):
            resp = self.cfn.create_change_set(
                StackName=name, ChangeSetName=change_name, ChangeSetType="UPDATE", **template,
                Parameters=_parameters(parameters), Capabilities=CAPABILITIES, Tags=[{"Key": CLUSTER_TAG, "Value": name}],
            )
            change_id = str(resp["Id"])
            desc = self._wait_change_set(change_id, policy)
        if desc["Status"] == "FAILED":
            self.discard_change_set(change_id)
            reason = desc.get("StatusReason", "")
            if "didn't contain changes" in reason or "No updates" in reason:
                raise NoChanges(f"stack {name!r}: nothing to change")
            raise DlcfnError(f"stack {name!r}: the change set failed: {reason}")
        param_changes = _parameter_changes(old, parameters)
        resources = [_resource_change(c) for c in desc.get("Changes", []) if c.get("Type") == "Resource"]
        if not param_changes and not resources:
            self.discard_change_set(change_id)
            raise NoChanges(f"stack {name!r}: nothing to change")
        return ChangeSummary(change_id, param_changes, resources)

    def plan_parameter_update(self, name: str, parameters: dict[str, str], previous: dict[str, str]) -> ChangeSummary:
        """The moto stand-in for plan_update: the summary from the parameter differences alone.

        moto 5.2's change sets break after the first one executed on a stack (a later change set
        with new values FAILS as "didn't contain changes"), while its UpdateStack works every time;
        so under moto there is no change set: the summary lists the parameter changes and no
        resource changes (moto would not compute them), and `update` applies it. NoChanges if empty."""
        param_changes = _parameter_changes(previous, parameters)
        if not param_changes:
            raise NoChanges(f"stack {name!r}: nothing to change")
        return ChangeSummary("", param_changes, [])

    def update(self, name: str, template_body: str, parameters: dict[str, str]) -> str:
        """UpdateStack with every parameter value given (moto's path; AWS goes through a change set)."""
        with self.template_source(name, template_body) as template, aws_errors(f"update stack {name!r}"):
            resp = self.cfn.update_stack(
                StackName=name, **template, Parameters=_parameters(parameters),
                Capabilities=CAPABILITIES, Tags=[{"Key": CLUSTER_TAG, "Value": name}],
            )
        return str(resp["StackId"])

    def _wait_change_set(self, change_id: str, policy: WaitPolicy) -> dict[str, Any]:
        start, delay = policy.clock.monotonic(), policy.first_poll_s
        while True:
            desc = self.cfn.describe_change_set(ChangeSetName=change_id)
            if desc["Status"] in {"CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE"}:
                return dict(desc)
            if policy.clock.monotonic() - start > policy.timeout_s:
                raise StackTimeout(f"change set {change_id} still {desc['Status']} after {policy.timeout_s:.0f} s")
            policy.clock.sleep(delay)
            delay = min(delay * 2, policy.max_poll_s)

    def execute(self, change: ChangeSummary) -> None:
        with aws_errors("execute change set"):
            self.cfn.execute_change_set(ChangeSetName=change.change_set_id)

    def discard_change_set(self, change_id: str) -> None:
        with aws_errors("delete change set"):
            self.cfn.delete_change_set(ChangeSetName=change_id)

    def resources(self, stack_id: str) -> list[tuple[str, str]]:
        """(type, physical id) of every resource of the stack."""
        with aws_errors("list stack resources"):
            pages = self.cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
            return [(r["ResourceType"], r.get("PhysicalResourceId", "")) for page in pages for r in page["StackResourceSummaries"]]

    def delete(self, stack_id: str) -> None:
        with aws_errors(f"delete stack {stack_id}"):
            self.cfn.delete_stack(StackName=stack_id)

    def tail(self, stack_id: str, *, fresh: bool) -> EventTail:
        """An event tail; `fresh=False` skips the events of earlier operations."""
        tail = EventTail(self.cfn, stack_id)
        if not fresh:
            with aws_errors("read stack events"):
                tail.prime()
        return tail


def _parameters(values: dict[str, str] | dict[str, str | None]) -> list[dict[str, Any]]:
    return [{"ParameterKey": k, "UsePreviousValue": True} if v is None else {"ParameterKey": k, "ParameterValue": str(v)}
            for k, v in sorted(values.items())]


def _parameter_changes(old: dict[str, str], new: dict[str, str] | dict[str, str | None]) -> list[tuple[str, str, str]]:
    """(key, old, new) of each parameter given a value that differs from the stack's."""
    return [(k, old.get(k, ""), v) for k, v in sorted(new.items()) if v is not None and old.get(k, "") != v]


def _resource_change(change: dict[str, Any]) -> tuple[str, str, str, str]:
    rc = change.get("ResourceChange", {})
    return (rc.get("Action", ""), rc.get("LogicalResourceId", ""), rc.get("ResourceType", ""), rc.get("Replacement", "") or "")


def _timeout(name: str, op: Operation, status: str, tail: EventTail, timeout_s: float) -> StackTimeout:
    pending = tail.in_progress()
    what = ", ".join(f"{e.logical_id} ({e.resource_type})" for e in pending) or "no resource reported progress"
    return StackTimeout(
        f"stack {name!r} {op.verb} timed out after {timeout_s:.0f} s in {status}; still in progress: {what}",
        hint=f"it keeps going in AWS: watch it with `dlcfn status {name}`, or remove it with `dlcfn delete-stack {name}`",
    )


def delete_template_bucket(s3: Any, bucket: str) -> bool:
    """Empty and delete a template staging bucket; False when there was none. Errors pass (a
    bucket that stays is reported by the sweep of `delete-stack`, which calls this again)."""
    import botocore.exceptions as bx

    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)
        return True
    except bx.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            return False
        raise
