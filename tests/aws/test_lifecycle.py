"""Stack lifecycle against moto in-process: create -> status -> update 2->4 -> delete, list,
the sweep, and what is left afterwards (nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import moto_resources
import pytest
from minicluster import MiniSpec

from dlcfn.aws.session import StackExists
from dlcfn.blueprint import names
from dlcfn.inventory import load_state
from dlcfn.node.userdata import FRAMEWORK_PYTHON
from dlcfn.provider import CreateRequest, UpdateRequest


def snapshot() -> dict[str, set[str]]:
    """Every resource a cluster stack can create, by kind, in the in-process moto."""
    return moto_resources.snapshot(boto3.client)


def test_create_status_update_delete(provider: Any, progress: Any, aws_env: Path) -> None:
    before = snapshot()
    state = provider.create(CreateRequest(name="alpha", spec=MiniSpec(workers=2), ssh_key="/keys/k.pem"), progress)
    assert state.stack_status == "CREATE_COMPLETE"
    assert [n.name for n in state.nodes] == ["master", "worker-1", "worker-2"]
    assert all(n.state == "running" and n.private_ip.startswith("10.0.0.") for n in state.nodes)
    assert state.outputs[names.O_MASTER_INSTANCE_ID] == state.master.instance_id
    # the state file is what `submit` reads: same nodes, the key given at create time
    saved = load_state(aws_env / "clusters" / "alpha" / "state.json", "alpha")
    assert [n.instance_id for n in saved.nodes] == [n.instance_id for n in state.nodes]
    assert saved.ssh_key == "/keys/k.pem" and saved.provider == "aws" and saved.region == "us-east-1"
    # moto prints no host key block: the state says so instead of trusting first use
    assert "host keys unknown for master, worker-1, worker-2" in saved.host_key_note
    assert Path(saved.known_hosts).read_text() == ""

    status = provider.status("alpha")
    assert [n.instance_id for n in status.nodes] == [n.instance_id for n in state.nodes]

    updated = provider.update(UpdateRequest(name="alpha", options={"workers": 4}), progress)
    assert updated.stack_status == "UPDATE_COMPLETE"
    assert [n.name for n in updated.nodes] == ["master", "worker-1", "worker-2", "worker-3", "worker-4"]
    assert len({n.instance_id for n in updated.workers}) == 4
    assert load_state(aws_env / "clusters" / "alpha" / "state.json", "alpha").ssh_key == "/keys/k.pem"
    assert [n.name for n in provider.status("alpha").nodes][-1] == "worker-4"

    report = provider.delete("alpha", progress)
    assert report.existed
    assert not (aws_env / "clusters" / "alpha").exists()
    # the sweep is where moto's route-table leak is handled: it removed the table and the VPC
    assert {x.kind for x in report.leftovers} == {"route-table", "vpc"}
    assert all(x.outcome.value == "deleted" for x in report.leftovers)
    assert snapshot() == before


def test_create_existing_name_says_so(provider: Any, progress: Any) -> None:
    provider.create(CreateRequest(name="beta", spec=MiniSpec(workers=1)), progress)
    with pytest.raises(StackExists, match="cluster 'beta' already exists in us-east-1"):
        provider.create(CreateRequest(name="beta", spec=MiniSpec(workers=1)), progress)


def test_list_several_clusters_only_dlcfn_ones(provider: Any, progress: Any) -> None:
    for name, workers in (("c-one", 1), ("c-two", 2), ("c-three", 3)):
        provider.create(CreateRequest(name=name, spec=MiniSpec(workers=workers)), progress)
    boto3.client("cloudformation").create_stack(StackName="not-ours", TemplateBody='{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}')
    listed = provider.list()
    assert [(c.name, c.status, c.workers) for c in listed] == [
        ("c-one", "CREATE_COMPLETE", "1"), ("c-three", "CREATE_COMPLETE", "3"), ("c-two", "CREATE_COMPLETE", "2")]
    provider.delete("c-two", progress)
    assert [c.name for c in provider.list()] == ["c-one", "c-three"]


def test_delete_missing_cluster_reports_nothing_existed(provider: Any, progress: Any) -> None:
    report = provider.delete("ghost", progress)
    assert not report.existed and report.leftovers == []


def test_sweep_removes_tagged_leftovers_and_keeps_efs_unless_purged(provider: Any, progress: Any) -> None:
    from dlcfn.aws.sweep import sweep

    ec2 = boto3.client("ec2")
    tag = [{"ResourceType": t, "Tags": [{"Key": names.CLUSTER_TAG, "Value": "gamma"}]} for t in ("network-interface", "elastic-ip")]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet, TagSpecifications=[tag[0]])["NetworkInterface"]["NetworkInterfaceId"]
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=[tag[1]])["AllocationId"]
    efs = boto3.client("efs")
    fs = efs.create_file_system(CreationToken="gamma", Tags=[{"Key": names.CLUSTER_TAG, "Value": "gamma"}])["FileSystemId"]
    other = efs.create_file_system(CreationToken="other", Tags=[{"Key": names.CLUSTER_TAG, "Value": "delta"}])["FileSystemId"]

    kept = sweep(provider.session, "gamma", purge_efs=False)
    assert {(x.kind, x.resource_id, x.outcome.value) for x in kept} == {
        ("network-interface", eni, "deleted"), ("elastic-ip", eip, "deleted"), ("file-system", fs, "kept")}
    assert ec2.describe_network_interfaces(Filters=[{"Name": "network-interface-id", "Values": [eni]}])["NetworkInterfaces"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    purged = sweep(provider.session, "gamma", purge_efs=True)
    assert [(x.resource_id, x.outcome.value) for x in purged] == [(fs, "deleted")]
    assert [f["FileSystemId"] for f in efs.describe_file_systems()["FileSystems"]] == [other]


def test_blueprint_stack_create_update_delete_leaves_nothing(moto: None, aws_env: Path, progress: Any) -> None:
    """The same cycle with the real blueprint (Target.MOTO) and the real spec rules."""
    from dlcfn.aws.provider import AwsProvider
    from dlcfn.aws.session import AwsSession, AwsTarget
    from dlcfn.home import Home
    from dlcfn.spec.cluster import cluster_spec_from_options

    ec2 = boto3.client("ec2")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    boto3.client("ssm").put_parameter(Name="/dlcfn/test/ami-id", Value=ami, Type="String")  # moto has no DLAMI parameter
    before = snapshot()
    spec = cluster_spec_from_options({"workers": "2", "key_name": "k", "ssh_cidr": "203.0.113.7/32", "ami_ssm_parameter": "/dlcfn/test/ami-id",
                                      "gpu_framework_packages": "", "cpu_framework_packages": "mxnet==1.9.1"},
                                     None, require_key_name=True)
    provider = AwsProvider(home=Home(aws_env), session=AwsSession.open(AwsTarget()), target="moto")
    state = provider.create(CreateRequest(name="real", spec=spec), progress)
    assert [n.name for n in state.nodes] == ["master", "worker-1", "worker-2"]
    # From the stack's framework parameters (an empty one included): the venv's python on the nodes.
    assert state.node_python == FRAMEWORK_PYTHON
    master, workers = state.master, state.workers
    assert master is not None and all(not w.public_ip for w in workers)  # workers in the private subnet
    assert state.outputs[names.O_MASTER_PRIVATE_IP] == master.private_ip
    updated = provider.update(UpdateRequest(name="real", options={"workers": "4"}), progress)
    assert [n.name for n in updated.nodes] == ["master", "worker-1", "worker-2", "worker-3", "worker-4"]
    stack = boto3.client("cloudformation").describe_stacks(StackName="real")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (params[names.P_WORKER_COUNT], params[names.P_MIN_WORKERS]) == ("4", "4")
    assert (params[names.P_GPU_FRAMEWORK], params[names.P_CPU_FRAMEWORK]) == ("", "mxnet==1.9.1") and updated.node_python == FRAMEWORK_PYTHON
    report = provider.delete("real", progress)
    assert report.existed and all(x.outcome.value == "deleted" for x in report.leftovers)
    assert snapshot() == before
