"""ClusterSpec: flags over cluster.yaml, every rule's finding, all findings at once, and the
parameter values create-stack / update-stack send."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dlcfn.blueprint import names
from dlcfn.errors import Level, ValidationFailed
from dlcfn.spec.cluster import (DEFAULT_AMI_PARAMETER, WORKER_TYPES, ClusterSpec, cluster_spec_from_options,
                                update_parameters, validate_cluster)


def paths(spec: ClusterSpec, **kw: bool) -> list[str]:
    return [f.path for f in validate_cluster(spec, **kw) if f.level is Level.ERROR]


def test_defaults_are_valid_and_become_parameters() -> None:
    spec = cluster_spec_from_options({})
    assert validate_cluster(spec) == []
    assert spec.parameters() == {
        names.P_WORKER_COUNT: "2", names.P_MIN_WORKERS: "2", names.P_WORKER_TYPE: "g5.xlarge",
        names.P_MASTER_TYPE: "c5.xlarge", names.P_EFS_PERFORMANCE_MODE: "generalPurpose", names.P_ROOT_VOLUME_GB: "100",
        names.P_SPOT: "false", names.P_PLACEMENT_GROUP: "false", names.P_WAIT_TIMEOUT: "3600"}
    assert spec.ami_ssm_parameter == DEFAULT_AMI_PARAMETER  # left to the template's default
    assert ClusterSpec(ami_ssm_parameter="/my/ami").parameters()[names.P_AMI_PARAMETER] == "/my/ami"


def test_flags_override_yaml(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("workers: 4\nworker_type: p3.2xlarge\nspot: true\nssh_cidr: 10.1.0.0/16\n")
    spec = cluster_spec_from_options({"workers": "6", "ssh_cidr": None}, config)
    assert (spec.workers, spec.worker_type, spec.spot, spec.ssh_cidr) == (6, "p3.2xlarge", True, "10.1.0.0/16")
    assert spec.parameters()[names.P_SPOT] == "true"


def test_yaml_findings_name_key_and_line(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("workers: 2\nefs_id: fs-12\nmin_wokers: 1\n")
    with pytest.raises(ValidationFailed) as info:
        cluster_spec_from_options({}, config)
    assert info.value.render().splitlines() == [
        f"{config}:3: min_wokers: unknown key (did you mean 'min_workers'?); allowed keys: " + ", ".join(sorted(
            [*(f for f in ClusterSpec.__dataclass_fields__)])),
        f"{config}:2: efs_id: 'fs-12' is not valid; expected fs- followed by 8 or 17 hex digits, e.g. fs-0123abcd",
    ]


@pytest.mark.parametrize("efs_id", ["fs-0123abcd", "fs-0123456789abcdef0"])
def test_efs_ids_of_both_lengths(efs_id: str) -> None:
    assert paths(ClusterSpec(efs_id=efs_id)) == []


@pytest.mark.parametrize(("spec", "path"), [
    (ClusterSpec(workers=0), "workers"),
    (ClusterSpec(workers=1001), "workers"),
    (ClusterSpec(workers=2, min_workers=3), "min_workers"),
    (ClusterSpec(worker_type="banana.large"), "worker_type"),
    (ClusterSpec(master_type="p5.48xlarge"), "master_type"),
    (ClusterSpec(ssh_cidr="10.0.0.300/33"), "ssh_cidr"),
    (ClusterSpec(ssh_cidr="10.0.0.1"), "ssh_cidr"),
    (ClusterSpec(region="us-moon-1"), "region"),
    (ClusterSpec(efs_id="fs-xyz"), "efs_id"),
    (ClusterSpec(image_id="ami-1"), "image_id"),
    (ClusterSpec(vpc_id="vpc-0123abcd"), "public_subnet_id"),
    (ClusterSpec(efs_performance_mode="turbo"), "efs_performance_mode"),
    (ClusterSpec(efs_id="fs-0123abcd", efs_performance_mode="maxIO"), "efs_performance_mode"),
    (ClusterSpec(root_volume_gb=8), "root_volume_gb"),
    (ClusterSpec(wait_timeout=10), "wait_timeout"),
    (ClusterSpec(availability_zone="zone-a"), "availability_zone"),
])
def test_each_rule(spec: ClusterSpec, path: str) -> None:
    assert paths(spec) == [path]


def test_all_findings_together_named_as_flags() -> None:
    with pytest.raises(ValidationFailed) as info:
        cluster_spec_from_options({"workers": "0", "worker_type": "banana.large", "efs_id": "fs-xyz", "ssh_cidr": "1.2.3/8"})
    assert [f.path for f in info.value.findings] == ["--workers", "--worker-type", "--ssh-cidr", "--efs-id"]


def test_open_ssh_is_a_warning_not_an_error() -> None:
    [finding] = validate_cluster(ClusterSpec(ssh_cidr="0.0.0.0/0"))
    assert finding.level is Level.WARNING
    assert cluster_spec_from_options({"ssh_cidr": "0.0.0.0/0"}).ssh_cidr == "0.0.0.0/0"


def test_key_name_required_only_when_asked() -> None:
    assert paths(ClusterSpec()) == []
    assert paths(ClusterSpec(), require_key_name=True) == ["key_name"]
    with pytest.raises(ValidationFailed, match="--key-name: is required"):
        cluster_spec_from_options({}, require_key_name=True)
    assert paths(ClusterSpec(), require_ssh_cidr=True) == ["ssh_cidr"]
    assert paths(ClusterSpec(ssh_cidr="10.0.0.0/8", key_name="k"), require_ssh_cidr=True, require_key_name=True) == []


def test_worker_types_cover_the_gpu_families() -> None:
    for family in ("p3.", "p4d.", "p5.", "g4dn.", "g5.", "g6.", "g6e."):
        assert any(t.startswith(family) for t in WORKER_TYPES)
    assert "c5.xlarge" in WORKER_TYPES


def test_update_parameters() -> None:
    current = {names.P_WORKER_COUNT: "4", names.P_MIN_WORKERS: "4", names.P_WORKER_TYPE: "g5.xlarge"}
    assert update_parameters(current, {"workers": "6"}) == {names.P_WORKER_COUNT: "6", names.P_MIN_WORKERS: "6"}
    assert update_parameters({**current, names.P_MIN_WORKERS: "2"}, {"workers": 6}) == {names.P_WORKER_COUNT: "6"}
    assert update_parameters(current, {"ssh_cidr": "10.0.0.0/8"}) == {names.P_SSH_LOCATION: "10.0.0.0/8"}
    with pytest.raises(ValidationFailed, match="--workers: must be from 1 to 1000, got 0"):
        update_parameters(current, {"workers": "0"})


def test_framework_packages_default_and_become_parameters_only_when_changed(tmp_path: Path) -> None:
    spec = ClusterSpec()
    assert (spec.gpu_framework_packages, spec.cpu_framework_packages) == ("mxnet-cu112==1.9.1 numpy==1.23.5", "mxnet==1.9.1 numpy==1.23.5")
    assert names.P_GPU_FRAMEWORK not in spec.parameters()  # the template's default (the moto variant's is empty)
    # "" is a value: install nothing (an AMI that has its framework).
    assert ClusterSpec(gpu_framework_packages="").parameters()[names.P_GPU_FRAMEWORK] == ""
    config = tmp_path / "cluster.yaml"
    config.write_text("cpu_framework_packages:\n  - mxnet==1.9.1\n  - numpy==1.23.5\n  - scipy\n")
    assert cluster_spec_from_options({"gpu_framework_packages": "  torch==2.3.1   numpy "}, config).parameters() == {
        **ClusterSpec().parameters(), names.P_GPU_FRAMEWORK: "torch==2.3.1 numpy",
        names.P_CPU_FRAMEWORK: "mxnet==1.9.1 numpy==1.23.5 scipy"}


@pytest.mark.parametrize("value", ["mxnet; rm -rf /", "mxnet==1.9.1 $(id)", "numpy<1.24", "--index-url=x mxnet", "mxnet`id`",
                                   "'mxnet'"])
def test_framework_packages_without_shell_metacharacters(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as info:
        cluster_spec_from_options({"gpu_framework_packages": value})
    [line] = info.value.render().splitlines()
    assert line.startswith(f"--gpu-framework-packages: {value.strip()!r} is not a list of pip requirements; give them separated by spaces")
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({"workers": 2, "cpu_framework_packages": value}, sort_keys=False))
    with pytest.raises(ValidationFailed, match=rf"^{config}:2: cpu_framework_packages: .* is not a list of pip requirements"):
        cluster_spec_from_options({}, config)
