"""The UserData script: Fn::Sub placeholders, shell syntax, the embedded bootstrap, the size limit."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess

import pytest

from dlcfn.node import bootstrap, userdata

PSEUDO = {"AWS::Region": "eu-west-1", "AWS::StackName": "dl-cluster-with-a-rather-long-name"}
# Realistic lengths: a presigned handle URL is ~500 characters.
SAMPLE = {
    "MasterQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/dl-cluster-MasterQueue-1A2B3C4D5E6F",
    "WorkerQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/dl-cluster-WorkerQueue-1A2B3C4D5E6F",
    "WaitHandleUrl": "https://cloudformation-waitcondition-eu-west-1.s3.eu-west-1.amazonaws.com/"
    + "arn%3Aaws%3Acloudformation%3Aeu-west-1%3A123456789012%3Astack/dl/abc/ClusterReadyHandle?"
    + "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261123T100000Z&X-Amz-SignedHeaders=host&"
    + "X-Amz-Expires=86399&X-Amz-Credential=AKIA%2F20261123%2Feu-west-1%2Fs3%2Faws4_request&"
    + "X-Amz-Signature=" + "0" * 64,
    "FileSystemId": "fs-0123456789abcdef0",
    "WorkerGroupName": "dl-cluster-with-a-rather-long-name-workers",
    "MinWorkers": "2",
    "ReadyTimeout": "3600",
    "GpuFrameworkPackages": "mxnet-cu112==1.9.1 numpy==1.23.5",
    "CpuFrameworkPackages": "mxnet==1.9.1 numpy==1.23.5",
}
PLACEHOLDER = re.compile(r"\$\{([^!}][^}]*)\}")
USERDATA_LIMIT = 16 * 1024  # bytes, before base64


def substitute(script: str, values: dict[str, str]) -> str:
    """Fn::Sub: `${Name}` -> value, `${!Literal}` -> `${Literal}`."""
    out = PLACEHOLDER.sub(lambda m: values[m.group(1)], script)
    return out.replace("${!", "${")


def rendered(role: str) -> str:
    values = {**PSEUDO, **{name: SAMPLE[name] for name in userdata.userdata_variables(role)}}
    return substitute(userdata.render_userdata(role), values)


@pytest.mark.parametrize("role", userdata.ROLES)
def test_placeholders_are_the_declared_variables(role: str) -> None:
    used = set(PLACEHOLDER.findall(userdata.render_userdata(role)))
    assert used - set(PSEUDO) == set(userdata.userdata_variables(role))


@pytest.mark.parametrize("role", userdata.ROLES)
def test_rendered_script_is_valid_bash_with_values_substituted(role: str) -> None:
    script = rendered(role)
    assert "${" not in script
    assert SAMPLE["WaitHandleUrl"] in script and SAMPLE["FileSystemId"] in script
    result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("role", userdata.ROLES)
def test_config_written_by_the_script_is_a_valid_bootstrap_config(role: str) -> None:
    script = rendered(role)
    config_text = re.search(r"<<'DLCFN_CONFIG'[^\n]*\n(.*?)\nDLCFN_CONFIG\n", script, re.S).group(1)
    config = bootstrap.Config.from_dict({**json.loads(config_text), "role": role})
    assert config.region == "eu-west-1" and config.stack_name == PSEUDO["AWS::StackName"]
    assert config.master_queue_url == SAMPLE["MasterQueueUrl"]
    assert config.wait_handle_url == SAMPLE["WaitHandleUrl"]
    assert config.file_system_id == SAMPLE["FileSystemId"] and config.ready_timeout_s == 3600
    assert config.gpu_framework_packages == SAMPLE["GpuFrameworkPackages"]
    assert config.cpu_framework_packages == SAMPLE["CpuFrameworkPackages"]
    if role == userdata.MASTER:
        assert config.wait_groups == [SAMPLE["WorkerGroupName"]] and config.min_workers == 2


@pytest.mark.parametrize("role", userdata.ROLES)
def test_embedded_bootstrap_is_the_shipped_source(role: str) -> None:
    script = rendered(role)
    blob = re.search(r"<<'DLCFN_BOOTSTRAP'[^\n]*\n(.*?)\nDLCFN_BOOTSTRAP\n", script, re.S).group(1)
    assert gzip.decompress(base64.b64decode(blob)) == userdata.bootstrap_source()


@pytest.mark.parametrize("role", userdata.ROLES)
def test_userdata_fits_the_16_kb_limit(role: str) -> None:
    """What the launch templates carry: the script with the minified bootstrap (blueprint.compute)."""
    from dlcfn.blueprint.compute import node_script

    values = {**PSEUDO, **{name: SAMPLE[name] for name in userdata.userdata_variables(role)}}
    assert len(substitute(node_script(role), values).encode()) <= USERDATA_LIMIT


def test_rendering_is_deterministic() -> None:
    assert userdata.render_userdata("master") == userdata.render_userdata("master")


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="role must be one of master, worker"):
        userdata.render_userdata("head")


def test_shell_fallback_signals_failure_when_python_cannot_run(receiver) -> None:
    """The script's own `fail` (used when no Python with boto3 runs) PUTs a valid FAILURE signal."""
    script = substitute(userdata.render_userdata("worker"), {**PSEUDO, **SAMPLE, "WaitHandleUrl": receiver.url})
    fail = re.search(r"^fail\(\) \{\n.*?^\}\n", script, re.S | re.M).group(0)
    snippet = f"ROLE=worker\nHANDLE_URL='{receiver.url}'\n{fail}fail \"no python3 with boto3 on this AMI\"\n"
    result = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [signal] = receiver.wait_for(1, timeout=10)
    assert signal.content_type is None  # curl -H 'Content-Type:' sends none, as the presigned URL needs
    assert signal.body["Status"] == "FAILURE" and "(worker): no python3 with boto3 on this AMI" in signal.body["Reason"]
