"""Host keys from console output into known_hosts, and the record ssh/submit read."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcfn.aws.inventory import known_host_addresses, parse_host_keys, record_host_keys
from dlcfn.inventory import ClusterState, Node

CONSOLE = """[   10.1] cloud-init[1234]: Cloud-init v. 23.1 running 'modules:final'
ec2:
ec2: #############################################################
ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----
ec2: 256 SHA256:abc root@ip-10-0-1-5 (ECDSA)
ec2: -----END SSH HOST KEY FINGERPRINTS-----
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= root@ip-10-0-1-5
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey root@ip-10-0-1-5
-----END SSH HOST KEY KEYS-----
[   11.0] cloud-init[1234]: finished
"""


def test_parse_host_keys_takes_the_key_block_only() -> None:
    assert parse_host_keys(CONSOLE) == [
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey",
    ]
    assert parse_host_keys("Linux version 2.6.16-xenU ... no keys here") == []


@dataclass
class FakeEc2:
    consoles: dict[str, str]
    calls: list[str] = field(default_factory=list)

    def get_console_output(self, InstanceId: str) -> dict[str, Any]:  # noqa: N803 (boto3's spelling)
        self.calls.append(InstanceId)
        return {"InstanceId": InstanceId, "Output": self.consoles.get(InstanceId, "")}


@dataclass
class FakeSession:
    ec2: FakeEc2

    def client(self, service: str) -> Any:
        assert service == "ec2"
        return self.ec2


def state(tmp_path: Path) -> ClusterState:
    return ClusterState(
        name="c", provider="aws", region="us-east-1", stack_name="c", known_hosts=str(tmp_path / "known_hosts"),
        outputs={"MasterPublicDnsName": "ec2-3-3-3-3.compute-1.amazonaws.com"},
        nodes=[Node("master", "master", "i-m", private_ip="10.0.0.4", public_ip="3.3.3.3"),
               Node("worker", "worker-1", "i-w1", private_ip="10.0.1.5"),
               Node("worker", "worker-2", "i-w2", private_ip="10.0.1.6")])


def test_record_host_keys_writes_known_hosts_and_reports_missing(tmp_path: Path) -> None:
    encoded = base64.b64encode(CONSOLE.encode()).decode()  # EC2 returns the console base64-encoded
    ec2 = FakeEc2({"i-m": encoded, "i-w1": CONSOLE, "i-w2": "still booting"})
    cache = tmp_path / "host_keys.json"
    missing = record_host_keys(FakeSession(ec2), state(tmp_path), cache)  # type: ignore[arg-type]
    assert missing == ["worker-2"]
    lines = (tmp_path / "known_hosts").read_text().splitlines()
    assert lines[0] == "10.0.0.4,3.3.3.3,ec2-3-3-3-3.compute-1.amazonaws.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY="
    assert lines[2].startswith("10.0.1.5 ecdsa-sha2-nistp256 ") and len(lines) == 4
    assert known_host_addresses(tmp_path / "known_hosts") == {"10.0.0.4", "3.3.3.3", "ec2-3-3-3-3.compute-1.amazonaws.com", "10.0.1.5"}
    assert sorted(json.loads(cache.read_text())) == ["i-m", "i-w1"]

    # later: cached keys are reused (consoles only keep recent output), the booted node is added
    ec2.consoles = {"i-w2": CONSOLE}
    ec2.calls.clear()
    assert record_host_keys(FakeSession(ec2), state(tmp_path), cache) == []  # type: ignore[arg-type]
    assert ec2.calls == ["i-w2"]
    assert "10.0.1.6" in known_host_addresses(tmp_path / "known_hosts")


def test_replaced_instances_drop_out_of_known_hosts(tmp_path: Path) -> None:
    ec2 = FakeEc2({"i-m": CONSOLE, "i-w1": CONSOLE, "i-w2": CONSOLE})
    cache = tmp_path / "host_keys.json"
    record_host_keys(FakeSession(ec2), state(tmp_path), cache)  # type: ignore[arg-type]
    shrunk = state(tmp_path)
    shrunk.nodes = shrunk.nodes[:2]
    record_host_keys(FakeSession(ec2), shrunk, cache)  # type: ignore[arg-type]
    assert "10.0.1.6" not in known_host_addresses(tmp_path / "known_hosts")  # AWS reuses private IPs
    assert sorted(json.loads(cache.read_text())) == ["i-m", "i-w1"]
