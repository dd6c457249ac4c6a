"""Failure paths with botocore's Stubber: a create that rolls back, a timeout, a name that exists,
and the translation of AWS errors (missing credentials, region, access denied)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import ANY, Stubber
from minicluster import MiniSpec, mini_renderer

from dlcfn.aws.events import Cause, StackEvent, classify, diagnose
from dlcfn.aws.provider import AwsProvider
from dlcfn.aws.session import AwsError, AwsSession, AwsTarget, StackExists, StackNotFound, aws_errors, translate
from dlcfn.aws.stack import Clock, StackFailed, StackTimeout, WaitPolicy
from dlcfn.errors import DlcfnError, ExitCode, UserInputError
from dlcfn.home import Home
from dlcfn.progress import Look, Progress
from dlcfn.provider import CreateRequest

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/boom/0f0f"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(n: int, logical: str, rtype: str, status: str, reason: str = "") -> dict[str, Any]:
    e = {"StackId": STACK_ID, "EventId": f"ev-{n}", "StackName": "boom", "LogicalResourceId": logical,
         "ResourceType": rtype, "Timestamp": T0 + timedelta(seconds=n), "ResourceStatus": status}
    return {**e, "ResourceStatusReason": reason} if reason else e


def stack(status: str) -> dict[str, Any]:
    return {"Stacks": [{"StackName": "boom", "StackId": STACK_ID, "CreationTime": T0, "StackStatus": status}]}


class FakeClock(Clock):
    """Time moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(monotonic=lambda: self.now, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@pytest.fixture
def stubbed(aws_env: Path) -> Any:
    session = AwsSession.open(AwsTarget())
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    session._clients["cloudformation"] = cfn
    stubber = Stubber(cfn)
    stubber.activate()
    clock = FakeClock()
    provider = AwsProvider(home=Home(aws_env), session=session, target="aws", render=mini_renderer,
                           policy=WaitPolicy(first_poll_s=1.0, max_poll_s=10.0, clock=clock))
    yield provider, stubber, clock
    stubber.deactivate()


def expect_create(stubber: Stubber) -> None:
    stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id boom does not exist", expected_params={"StackName": "boom"})
    stubber.add_response("create_stack", {"StackId": STACK_ID}, {
        "StackName": "boom", "TemplateBody": ANY, "Parameters": ANY, "Capabilities": ANY, "Tags": [{"Key": "dlcfn:cluster", "Value": "boom"}],
        "DisableRollback": False})


def test_rollback_complete_names_first_failing_resource_with_hint(stubbed: Any) -> None:
    provider, stubber, _ = stubbed
    expect_create(stubber)
    history = [
        event(1, "boom", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        event(2, "Vpc", "AWS::EC2::VPC", "CREATE_COMPLETE"),
        event(3, "MasterInstance", "AWS::EC2::Instance", "CREATE_FAILED", "The key pair 'nope' does not exist (Service: Ec2, Status Code: 400)"),
        event(4, "WorkerGroup", "AWS::AutoScaling::AutoScalingGroup", "CREATE_FAILED", "Resource creation cancelled"),
        event(5, "boom", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [MasterInstance, WorkerGroup]."),
        event(6, "Vpc", "AWS::EC2::VPC", "DELETE_COMPLETE"),
        event(7, "boom", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
    ]
    newest_first = lambda upto: {"StackEvents": list(reversed(history[:upto]))}  # noqa: E731
    stubber.add_response("describe_stack_events", newest_first(3), {"StackName": STACK_ID})
    stubber.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"), {"StackName": STACK_ID})
    stubber.add_response("describe_stack_events", newest_first(6), {"StackName": STACK_ID})
    stubber.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": STACK_ID})
    stubber.add_response("describe_stack_events", newest_first(7), {"StackName": STACK_ID})
    out = io.StringIO()
    with Progress("create", Look.PLAIN, stream=out) as progress, pytest.raises(StackFailed) as info:
        provider.create(CreateRequest(name="boom", spec=MiniSpec()), progress)
    message = info.value.render()
    assert message.startswith("stack 'boom' create failed (ROLLBACK_COMPLETE): MasterInstance (AWS::EC2::Instance) CREATE_FAILED: The key pair 'nope' does not exist")
    assert "aws ec2 import-key-pair" in message and info.value.diagnosis.cause is Cause.KEY_PAIR
    assert int(info.value.exit_code) == 1
    # each event was shown once, in order
    lines = [line.split()[1] for line in out.getvalue().splitlines()[2:]]
    assert lines == ["boom", "Vpc", "MasterInstance", "WorkerGroup", "boom", "Vpc", "boom"]
    stubber.assert_no_pending_responses()


def test_timeout_names_what_is_still_in_progress(stubbed: Any) -> None:
    provider, stubber, clock = stubbed
    expect_create(stubber)
    history = [
        event(1, "boom", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        event(2, "MasterInstance", "AWS::EC2::Instance", "CREATE_IN_PROGRESS"),
        event(3, "WorkerGroup", "AWS::AutoScaling::AutoScalingGroup", "CREATE_IN_PROGRESS"),
        event(4, "Vpc", "AWS::EC2::VPC", "CREATE_COMPLETE"),
        event(5, "MasterInstance", "AWS::EC2::Instance", "CREATE_COMPLETE"),
    ]
    stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(history))}, {"StackName": STACK_ID})
    for _ in range(20):  # a stack that never finishes
        stubber.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"), {"StackName": STACK_ID})
        stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(history))}, {"StackName": STACK_ID})
    with Progress("create", Look.PLAIN, stream=io.StringIO()) as progress, pytest.raises(StackTimeout) as info:
        provider.create(CreateRequest(name="boom", spec=MiniSpec(), timeout_s=60.0), progress)
    assert "stack 'boom' create timed out after 60 s in CREATE_IN_PROGRESS; still in progress: WorkerGroup (AWS::AutoScaling::AutoScalingGroup)" in info.value.render()
    assert int(info.value.exit_code) == 1
    assert 60.0 <= clock.now < 70.0  # it waited the whole timeout, and no longer


def test_create_of_existing_name_is_refused_before_create_stack(stubbed: Any) -> None:
    provider, stubber, _ = stubbed
    stubber.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": "boom"})
    with Progress("create", Look.PLAIN, stream=io.StringIO()) as progress, pytest.raises(StackExists, match="cluster 'boom' already exists"):
        provider.create(CreateRequest(name="boom", spec=MiniSpec()), progress)
    stubber.assert_no_pending_responses()  # no create_stack was sent


def test_already_exists_from_aws_is_stack_exists(stubbed: Any) -> None:
    _, stubber, _ = stubbed
    stubber.add_client_error("create_stack", "AlreadyExistsException", "Stack [boom] already exists")
    with pytest.raises(StackExists) as info:
        with aws_errors("create"):
            stubbed[0].session.client("cloudformation").create_stack(StackName="boom", TemplateBody="{}")
    assert info.value.render() == "create: Stack [boom] already exists; pick another name, or change it with `dlcfn update-stack`"


@pytest.mark.parametrize(("code", "message", "cls", "text"), [
    ("AccessDenied", "User is not authorized to perform cloudformation:CreateStack", DlcfnError, "access denied: User is not authorized"),
    ("AccessDeniedException", "nope", DlcfnError, "access denied"),
    ("UnauthorizedOperation", "You are not authorized", DlcfnError, "access denied"),
    ("ValidationError", "Stack with id x does not exist", StackNotFound, "does not exist"),
    ("ExpiredToken", "The security token included in the request is expired", DlcfnError, "have expired"),
    ("InvalidClientTokenId", "bad token", DlcfnError, "rejected the credentials"),
    ("LimitExceededException", "Limit on the number of stacks exceeded", DlcfnError, "quota reached"),
    ("Throttling", "Rate exceeded", AwsError, "Throttling: Rate exceeded"),
])
def test_client_errors_translate_by_code(code: str, message: str, cls: type, text: str) -> None:
    from botocore.exceptions import ClientError

    error = translate(ClientError({"Error": {"Code": code, "Message": message}}, "CreateStack"), "create")
    assert isinstance(error, cls) and text in error.render() and "\n" not in error.render()


def test_missing_credentials_is_one_line_with_the_fix() -> None:
    error = translate(NoCredentialsError(), "create stack 'x'")
    assert error.render() == ("create stack 'x': no AWS credentials found; set AWS_PROFILE or --profile, or "
                              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`")


def test_missing_region_and_unknown_profile(aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(UserInputError, match="no AWS region: pass --region") as info:
        AwsSession.open(AwsTarget())
    assert info.value.exit_code is ExitCode.BAD_INPUT
    with pytest.raises(UserInputError, match="--profile: AWS profile 'nosuch' is not in your AWS config"):
        AwsSession.open(AwsTarget(profile="nosuch", region="us-east-1"))


@pytest.mark.parametrize(("reason", "cause"), [
    ("We currently do not have sufficient p3.2xlarge capacity in the Availability Zone you requested (InsufficientInstanceCapacity)", Cause.CAPACITY),
    ("You have requested more vCPU capacity than your current vCPU limit of 0 allows (VcpuLimitExceeded)", Cause.QUOTA),
    ("The key pair 'x' does not exist", Cause.KEY_PAIR),
    ("The image id '[ami-123]' does not exist (InvalidAMIID.NotFound)", Cause.AMI),
    ("Something else broke", Cause.OTHER),
])
def test_classify_common_failures(reason: str, cause: Cause) -> None:
    assert classify(reason)[0] is cause


def test_diagnose_skips_knock_on_cancellations() -> None:
    events = [StackEvent.from_api(e) for e in (
        event(1, "A", "AWS::EC2::Instance", "CREATE_FAILED", "Resource creation cancelled"),
        event(2, "B", "AWS::EC2::Instance", "CREATE_FAILED", "The key pair 'k' does not exist"),
    )]
    found = diagnose(events)
    assert found is not None and found.event.logical_id == "B"
    assert diagnose([StackEvent.from_api(event(1, "A", "AWS::EC2::VPC", "CREATE_COMPLETE"))]) is None


def test_ctrl_c_while_waiting_says_the_stack_goes_on(stubbed: Any) -> None:
    from dlcfn.errors import Interrupted

    provider, stubber, clock = stubbed
    expect_create(stubber)
    stubber.add_response("describe_stack_events", {"StackEvents": [event(1, "boom", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS")]}, {"StackName": STACK_ID})
    stubber.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"), {"StackName": STACK_ID})

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    clock.sleep = interrupt
    with Progress("create", Look.PLAIN, stream=io.StringIO()) as progress, pytest.raises(Interrupted) as info:
        provider.create(CreateRequest(name="boom", spec=MiniSpec()), progress)
    assert info.value.render() == ("stopped watching; stack 'boom' create goes on in AWS; "
                                   "watch it with `dlcfn status boom` or remove it with `dlcfn delete-stack boom`")
    assert int(info.value.exit_code) == 130


def test_rollback_through_the_cli_prints_the_reason_and_exits_1(aws_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from dlcfn.cli import main

    session = AwsSession.open(AwsTarget())
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    session._clients["cloudformation"] = cfn
    monkeypatch.setattr(AwsSession, "open", classmethod(lambda cls, target: session))
    history = [
        event(1, "boom", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated"),
        event(2, "WorkerGroup", "AWS::AutoScaling::AutoScalingGroup", "CREATE_FAILED",
              "We currently do not have sufficient p3.2xlarge capacity in the Availability Zone you requested"),
        event(3, "boom", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE"),
    ]
    with Stubber(cfn) as stubber:
        expect_create(stubber)
        stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(history))}, {"StackName": STACK_ID})
        stubber.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": STACK_ID})
        stubber.add_response("describe_stack_events", {"StackEvents": list(reversed(history))}, {"StackName": STACK_ID})
        with pytest.raises(SystemExit) as info:
            main(["create-stack", "boom", "--worker-type", "p3.2xlarge", "--key-name", "k", "--ssh-cidr", "203.0.113.7/32"])
        stubber.assert_no_pending_responses()
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("dlcfn: error: stack 'boom' create failed (ROLLBACK_COMPLETE): WorkerGroup (AWS::AutoScaling::AutoScalingGroup) "
                       "CREATE_FAILED: We currently do not have sufficient p3.2xlarge capacity in the Availability Zone you requested; "
                       "AWS has no capacity for this instance type in this zone now: retry later, or pick another --availability-zone or --worker-type")
    assert any("WorkerGroup" in line and "CREATE_FAILED" in line for line in err[:-1])  # the event was shown as it happened
