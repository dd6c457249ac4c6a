"""The local cluster's detached moto server: start, serve AWS calls, stop with nothing left."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from dlcfn.local import moto_server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def state_dir(tmp_path: Path):
    yield tmp_path
    moto_server.stop(tmp_path)


def test_serves_aws_and_stops(state_dir: Path) -> None:
    endpoint = moto_server.start(state_dir)
    assert endpoint.url.startswith("http://127.0.0.1:")
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint.url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # a second client (another CLI call) sees the same state: the server outlives its starter
    assert moto_server.read(state_dir) == endpoint
    ec2b = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_server.read(state_dir).url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    assert vpc_id in [v["VpcId"] for v in ec2b.describe_vpcs()["Vpcs"]]

    assert moto_server.stop(state_dir) is True
    assert not _alive(endpoint.pid)
    assert moto_server.read(state_dir) is None
    assert moto_server.stop(state_dir) is False  # idempotent


def test_stale_record_is_not_trusted(state_dir: Path) -> None:
    # a ready file naming a pid that is not a moto server of this directory (here: this test)
    (state_dir / moto_server.READY_FILE).write_text(f'{{"url": "http://127.0.0.1:1", "pid": {os.getpid()}}}')
    assert moto_server.read(state_dir) is None
    assert moto_server.stop(state_dir) is False
    assert _alive(os.getpid())
