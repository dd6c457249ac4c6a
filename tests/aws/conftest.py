"""Fixtures for the AWS provider tests: fake credentials, a private DLCFN_HOME, moto in-process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # minicluster


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Credentials that only moto accepts, a region, no endpoint override, a private home."""
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    home = tmp_path / "dlcfn-home"
    monkeypatch.setenv("DLCFN_HOME", str(home))
    return home


@pytest.fixture
def moto(aws_env: Path) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def provider(moto: None, aws_env: Path):  # type: ignore[no-untyped-def]
    from minicluster import mini_renderer, mini_update_parameters

    from dlcfn.aws.provider import AwsProvider
    from dlcfn.aws.session import AwsSession, AwsTarget
    from dlcfn.home import Home

    return AwsProvider(home=Home(aws_env), session=AwsSession.open(AwsTarget()), target="moto",
                       render=mini_renderer, update_parameters=mini_update_parameters)


@pytest.fixture
def progress():  # type: ignore[no-untyped-def]
    import io

    from dlcfn.progress import Look, Progress

    stream = io.StringIO()
    with Progress("test", Look.PLAIN, stream=stream) as p:
        yield p
