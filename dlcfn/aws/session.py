"""AWS sessions for dlcfn, and the one place where botocore errors become DlcfnError.

Credentials and region come from boto3's default chain (environment, shared config/credentials
files, SSO, instance role); `--profile` and `--region` override it. `AWS_ENDPOINT_URL` is honoured
by botocore itself, which is how the same commands run against a moto server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dlcfn.errors import DlcfnError, UserInputError

ENDPOINT_ENV = "AWS_ENDPOINT_URL"

# Error codes (not message text) decide the class; CloudFormation reports a missing stack only as
# a ValidationError whose message ends in "does not exist", hence the one message check below.
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
_BAD_CREDENTIALS = {"InvalidClientTokenId", "SignatureDoesNotMatch", "AuthFailure", "UnrecognizedClientException"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_QUOTA = {"LimitExceededException", "LimitExceeded", "ServiceQuotaExceededException"}


class AwsError(DlcfnError):
    """An AWS API error without a more specific class; `code` is AWS's error code."""

    def __init__(self, message: str, *, code: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.code = code


class StackNotFound(DlcfnError):
    """The named stack does not exist (or was deleted)."""


class StackExists(DlcfnError):
    """create-stack of a name that is already a stack."""


class NoChanges(DlcfnError):
    """An update whose change set contains nothing to do."""


@dataclass(frozen=True)
class AwsTarget:
    """Where to talk to: the user's choices; None means "boto3's default chain decides"."""

    profile: str | None = None
    region: str | None = None
    endpoint: str = ""  # explicit endpoint (the local provider's moto server); "" = AWS_ENDPOINT_URL or AWS

    @property
    def endpoint_url(self) -> str:
        return self.endpoint or os.environ.get(ENDPOINT_ENV, "")


@dataclass
class AwsSession:
    """A boto3 session with a resolved region and one cached client per service."""

    target: AwsTarget
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, target: AwsTarget) -> "AwsSession":
        import boto3
        import botocore.exceptions

        try:
            session = boto3.session.Session(profile_name=target.profile, region_name=target.region)
        except botocore.exceptions.ProfileNotFound as e:
            raise UserInputError(f"--profile: AWS profile {target.profile!r} is not in your AWS config; see `aws configure list-profiles`") from e
        if not session.region_name:
            raise UserInputError("no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or set a region in your AWS profile")
        return cls(target=target, _session=session)

    @property
    def region(self) -> str:
        return str(self._session.region_name)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            # "standard" retries back off on throttling, which long event tails can trigger.
            config = Config(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="dlcfn")
            self._clients[service] = self._session.client(service, config=config, endpoint_url=self.target.endpoint or None)
        return self._clients[service]


def error_code(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def translate(error: BaseException, action: str = "") -> DlcfnError:
    """Turn a botocore exception into a DlcfnError with a one-line message and a next step."""
    import botocore.exceptions as bx

    doing = f"{action}: " if action else ""
    if isinstance(error, bx.NoCredentialsError):
        return DlcfnError(f"{doing}no AWS credentials found", hint="set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`")
    if isinstance(error, bx.NoRegionError):
        return UserInputError("no AWS region: pass --region or set AWS_REGION")
    if isinstance(error, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return DlcfnError(f"{doing}cannot reach the AWS endpoint ({error})", hint=f"check your network, --region, or {ENDPOINT_ENV}")
    if isinstance(error, bx.ClientError):
        return _translate_client_error(error, doing)
    if isinstance(error, bx.BotoCoreError):
        return DlcfnError(f"{doing}{error}")
    return DlcfnError(f"{doing}{error}")


def _translate_client_error(error: Any, doing: str) -> DlcfnError:
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).strip()
    if code in _ACCESS_DENIED:
        return DlcfnError(f"{doing}access denied: {message}", hint="the AWS identity in use lacks this permission; see README 'Deploying for real' for the policy")
    if code in _BAD_CREDENTIALS:
        return DlcfnError(f"{doing}AWS rejected the credentials ({code})", hint="check AWS_PROFILE / --profile and the access key")
    if code in _EXPIRED:
        return DlcfnError(f"{doing}AWS credentials have expired ({code})", hint="refresh them, e.g. `aws sso login`")
    if code == "AlreadyExistsException":
        return StackExists(f"{doing}{message}", hint="pick another name, or change it with `dlcfn update-stack`")
    if code == "ValidationError" and message.endswith("does not exist"):
        return StackNotFound(f"{doing}{message}", hint="see `dlcfn list`")
    if code == "ValidationError" and "No updates are to be performed" in message:
        return NoChanges(f"{doing}nothing to change")
    if code in _QUOTA:
        return DlcfnError(f"{doing}AWS quota reached: {message}", hint="delete unused stacks or ask AWS for a higher limit (Service Quotas)")
    if code == "InsufficientCapabilitiesException":
        return DlcfnError(f"{doing}{message}", hint="this is a dlcfn bug: the template needs a capability dlcfn did not pass")
    return AwsError(f"{doing}{code or 'AWS error'}: {message}", code=code)


@contextmanager
def aws_errors(action: str = "") -> Iterator[None]:
    """Translate any botocore exception raised inside the block (DlcfnError passes through)."""
    import botocore.exceptions as bx

    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as e:
        raise translate(e, action) from e
