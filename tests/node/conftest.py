"""Fixtures for the node tests: a moto account (`aws`) and a WaitCondition handle on 127.0.0.1
that records signals (`receiver`). The stack itself is built by `nodecluster.make_cluster`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from dlcfn.node.events import SignalReceiver

from nodecluster import REGION


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def receiver() -> Iterator[SignalReceiver]:
    with SignalReceiver() as r:
        yield r


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Types moto does not model (it creates placeholders) and says so on every stack.
    here = __file__.rsplit("/", 1)[0]
    quiet = pytest.mark.filterwarnings("ignore:Tried to parse AWS..(CloudFormation..WaitCondition|EC2..SecurityGroupEgress|SNS..Subscription)")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(quiet)
