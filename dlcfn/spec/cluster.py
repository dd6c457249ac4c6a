"""ClusterSpec: what a cluster looks like (from CLI flags and/or cluster.yaml), its validation
rules, and the CloudFormation parameter values it becomes.

Each rule is a tiny function `(spec) -> list[Finding]` whose findings name the spec field
(`workers`, `ssh_cidr`, ...); `validate_cluster` runs them all so every problem is reported at
once. The command layer renames fields to the flags the user typed (`FLAGS`); findings from a
cluster.yaml keep the YAML key and its line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from dlcfn.blueprint import names
from dlcfn.errors import Finding, Level, UserInputError, raise_for_findings
from dlcfn.spec.schema import Document, check_choice, check_int_range, check_unknown_keys, load_yaml_document

MAX_WORKERS = 1000

# Current GPU families with their real sizes, plus small CPU types for cheap trials.
GPU_TYPES: dict[str, tuple[str, ...]] = {
    "p3": ("p3.2xlarge", "p3.8xlarge", "p3.16xlarge", "p3dn.24xlarge"),
    "p4d": ("p4d.24xlarge", "p4de.24xlarge"),
    "p5": ("p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge"),
    "g4dn": ("g4dn.xlarge", "g4dn.2xlarge", "g4dn.4xlarge", "g4dn.8xlarge", "g4dn.12xlarge", "g4dn.16xlarge", "g4dn.metal"),
    "g5": ("g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.12xlarge", "g5.16xlarge", "g5.24xlarge", "g5.48xlarge"),
    "g6": ("g6.xlarge", "g6.2xlarge", "g6.4xlarge", "g6.8xlarge", "g6.12xlarge", "g6.16xlarge", "g6.24xlarge", "g6.48xlarge"),
    "g6e": ("g6e.xlarge", "g6e.2xlarge", "g6e.4xlarge", "g6e.8xlarge", "g6e.12xlarge", "g6e.16xlarge", "g6e.24xlarge", "g6e.48xlarge"),
}
CPU_TYPES = ("t3.large", "t3.xlarge", "c5.xlarge", "c5.2xlarge", "c5.4xlarge", "m5.large", "m5.xlarge", "m5.2xlarge")
WORKER_TYPES: tuple[str, ...] = tuple(t for sizes in GPU_TYPES.values() for t in sizes) + CPU_TYPES
# The master only coordinates (kvstore scheduler, hosts file, SSH jump host): CPU types suffice,
# plus the smallest GPU types for a master that also trains.
MASTER_TYPES: tuple[str, ...] = CPU_TYPES + ("c5.9xlarge", "m5.4xlarge", "g4dn.xlarge", "g5.xlarge", "g6.xlarge")

REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-south-1",
)
EFS_PERFORMANCE_MODES = ("generalPurpose", "maxIO")
DEFAULT_AMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
# The default AMI has drivers and CUDA but no framework: the node bootstrap pip-installs one of these
# into its own virtualenv, by the node's GPU count (the CUDA build does not import without a driver).
# numpy stays pinned: mxnet 1.9.1 breaks with numpy 1.24+.
DEFAULT_GPU_FRAMEWORK = "mxnet-cu112==1.9.1 numpy==1.23.5"
DEFAULT_CPU_FRAMEWORK = "mxnet==1.9.1 numpy==1.23.5"


class FrameworkList(NamedTuple):
    """One of the two framework lists: spec field, template parameter, default, which nodes."""

    field: str
    parameter: str
    default: str
    nodes: str


FRAMEWORK_LISTS = (FrameworkList("gpu_framework_packages", names.P_GPU_FRAMEWORK, DEFAULT_GPU_FRAMEWORK, "GPU"),
                   FrameworkList("cpu_framework_packages", names.P_CPU_FRAMEWORK, DEFAULT_CPU_FRAMEWORK, "CPU-only"))
# Space-separated pip requirements, each starting with a letter or digit (so never a pip option),
# without shell metacharacters: the text becomes a command line on every node. Also the
# template parameters' AllowedPattern.
PACKAGES_PATTERN = r"^$|^[A-Za-z0-9][A-Za-z0-9._+=~,-]*( [A-Za-z0-9][A-Za-z0-9._+=~,-]*)*$"

EFS_ID = re.compile(r"^fs-([0-9a-f]{8}|[0-9a-f]{17})$")
IMAGE_ID = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
VPC_ID = re.compile(r"^vpc-([0-9a-f]{8}|[0-9a-f]{17})$")
SUBNET_ID = re.compile(r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$")
KEY_NAME = re.compile(r"^[\x20-\x7e]{1,255}$")
SSM_PATH = re.compile(r"^/[A-Za-z0-9_.\-/]+$")
AZ = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")
# CIDR AllowedPattern for the SSHLocation parameter (IPv4 dotted quad + prefix length).
CIDR_PATTERN = r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$"

# spec field -> the CLI flag that sets it (the command layer names findings after the flag).
FLAGS: dict[str, str] = {
    "workers": "--workers", "min_workers": "--min-workers", "worker_type": "--worker-type",
    "master_type": "--master-type", "key_name": "--key-name", "ssh_cidr": "--ssh-cidr",
    "region": "--region", "availability_zone": "--availability-zone", "vpc_id": "--vpc-id",
    "public_subnet_id": "--public-subnet-id", "private_subnet_id": "--private-subnet-id",
    "efs_id": "--efs-id", "efs_performance_mode": "--efs-performance-mode",
    "root_volume_gb": "--root-volume-gb", "spot": "--spot", "placement_group": "--placement-group",
    "image_id": "--image-id", "ami_ssm_parameter": "--ami-ssm-parameter", "wait_timeout": "--wait-timeout",
    "gpu_framework_packages": "--gpu-framework-packages", "cpu_framework_packages": "--cpu-framework-packages",
}


@dataclass(frozen=True)
class ClusterSpec:
    """A validated cluster description. Empty strings mean "not set" (template default)."""

    workers: int = 2
    min_workers: int | None = None  # default: every worker must come up
    worker_type: str = "g5.xlarge"
    master_type: str = "c5.xlarge"
    key_name: str = ""
    ssh_cidr: str = ""
    region: str = ""
    availability_zone: str = ""
    vpc_id: str = ""
    public_subnet_id: str = ""
    private_subnet_id: str = ""
    efs_id: str = ""
    efs_performance_mode: str = "generalPurpose"
    root_volume_gb: int = 100
    spot: bool = False
    placement_group: bool = False
    image_id: str = ""
    ami_ssm_parameter: str = DEFAULT_AMI_PARAMETER
    wait_timeout: int = 3600  # seconds the stack waits for the master's "cluster ready" signal
    # pip requirements the nodes install at boot (GPU nodes / nodes without GPUs); "" installs
    # nothing and jobs use the AMI's python3 (an AMI that has its framework).
    gpu_framework_packages: str = DEFAULT_GPU_FRAMEWORK
    cpu_framework_packages: str = DEFAULT_CPU_FRAMEWORK
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def effective_min_workers(self) -> int:
        return self.workers if self.min_workers is None else self.min_workers

    @property
    def byo_network(self) -> bool:
        return bool(self.vpc_id)

    def parameters(self) -> dict[str, str]:
        """CloudFormation parameter values for create_stack (only the ones with a value)."""
        values = {
            names.P_WORKER_COUNT: str(self.workers),
            names.P_MIN_WORKERS: str(self.effective_min_workers),
            names.P_WORKER_TYPE: self.worker_type,
            names.P_MASTER_TYPE: self.master_type,
            names.P_KEY_NAME: self.key_name,
            names.P_SSH_LOCATION: self.ssh_cidr,
            names.P_AVAILABILITY_ZONE: self.availability_zone,
            names.P_VPC_ID: self.vpc_id,
            names.P_PUBLIC_SUBNET_ID: self.public_subnet_id,
            names.P_PRIVATE_SUBNET_ID: self.private_subnet_id,
            names.P_EXISTING_FILE_SYSTEM_ID: self.efs_id,
            names.P_EFS_PERFORMANCE_MODE: self.efs_performance_mode,
            names.P_ROOT_VOLUME_GB: str(self.root_volume_gb),
            names.P_SPOT: "true" if self.spot else "false",
            names.P_PLACEMENT_GROUP: "true" if self.placement_group else "false",
            names.P_IMAGE_ID: self.image_id,
            # Left to the template's default unless changed: the moto variant defaults to another path.
            names.P_AMI_PARAMETER: "" if self.ami_ssm_parameter == DEFAULT_AMI_PARAMETER else self.ami_ssm_parameter,
            names.P_WAIT_TIMEOUT: str(self.wait_timeout),
        }
        given = {k: v for k, v in values.items() if v != ""}
        # Left to the template's default unless changed (the moto variant's installs nothing, for
        # the local cluster); here "" is a value: install nothing.
        for fl in FRAMEWORK_LISTS:
            if getattr(self, fl.field) != fl.default:
                given[fl.parameter] = getattr(self, fl.field)
        return given


SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ClusterSpec) if f.name != "tags")
_INT_FIELDS = ("workers", "min_workers", "root_volume_gb", "wait_timeout")
_BOOL_FIELDS = ("spot", "placement_group")
_PACKAGE_FIELDS = tuple(fl.field for fl in FRAMEWORK_LISTS)


# -- rules -----------------------------------------------------------------------------------
Rule = Callable[[ClusterSpec], list[Finding]]


def _f(path: str, message: str) -> list[Finding]:
    return [Finding(path, message)]


def rule_workers(spec: ClusterSpec) -> list[Finding]:
    return check_int_range(Document({}), "workers", spec.workers, 1, MAX_WORKERS)


def rule_min_workers(spec: ClusterSpec) -> list[Finding]:
    if spec.min_workers is None:
        return []
    high = spec.workers if isinstance(spec.workers, int) and 1 <= spec.workers <= MAX_WORKERS else MAX_WORKERS
    return check_int_range(Document({}), "min_workers", spec.min_workers, 1, high)


def rule_instance_types(spec: ClusterSpec) -> list[Finding]:
    doc = Document({})
    # The worker list is long: name the families instead of every size.
    families = ", ".join(f"{k}.*" for k in GPU_TYPES) + ", " + ", ".join(CPU_TYPES)
    workers = [dataclasses.replace(f, message=f.message.split("; choose")[0] + f"; choose one of: {families}")
               for f in check_choice(doc, "worker_type", spec.worker_type, WORKER_TYPES)]
    return workers + check_choice(doc, "master_type", spec.master_type, MASTER_TYPES)


def rule_ssh_cidr(spec: ClusterSpec) -> list[Finding]:
    if not spec.ssh_cidr:
        return []
    try:
        net = ipaddress.IPv4Network(spec.ssh_cidr, strict=False)
    except ValueError:
        return _f("ssh_cidr", f"{spec.ssh_cidr!r} is not an IPv4 CIDR; use a.b.c.d/n with n from 0 to 32, e.g. 203.0.113.7/32")
    if not re.match(CIDR_PATTERN, spec.ssh_cidr):
        return _f("ssh_cidr", f"{spec.ssh_cidr!r} is not an IPv4 CIDR; use a.b.c.d/n, e.g. 203.0.113.7/32")
    if net.prefixlen == 0:
        return [Finding("ssh_cidr", "0.0.0.0/0 opens SSH to the whole internet; prefer your own address /32", level=Level.WARNING)]
    return []


def rule_region(spec: ClusterSpec) -> list[Finding]:
    return [] if not spec.region else check_choice(Document({}), "region", spec.region, REGIONS)


def rule_ids(spec: ClusterSpec) -> list[Finding]:
    checks = (
        ("efs_id", spec.efs_id, EFS_ID, "fs- followed by 8 or 17 hex digits, e.g. fs-0123abcd"),
        ("image_id", spec.image_id, IMAGE_ID, "ami- followed by 8 or 17 hex digits"),
        ("vpc_id", spec.vpc_id, VPC_ID, "vpc- followed by 8 or 17 hex digits"),
        ("public_subnet_id", spec.public_subnet_id, SUBNET_ID, "subnet- followed by 8 or 17 hex digits"),
        ("private_subnet_id", spec.private_subnet_id, SUBNET_ID, "subnet- followed by 8 or 17 hex digits"),
        ("availability_zone", spec.availability_zone, AZ, "a zone name such as us-east-1a"),
        ("ami_ssm_parameter", spec.ami_ssm_parameter, SSM_PATH, "an SSM parameter path starting with /"),
        ("key_name", spec.key_name, KEY_NAME, "1 to 255 printable ASCII characters"),
    )
    return [f for path, value, pattern, want in checks if value and not pattern.match(value)
            for f in _f(path, f"{value!r} is not valid; expected {want}")]


def rule_byo_network(spec: ClusterSpec) -> list[Finding]:
    given = [k for k in ("vpc_id", "public_subnet_id", "private_subnet_id") if getattr(spec, k)]
    if given and len(given) != 3:
        missing = [k for k in ("vpc_id", "public_subnet_id", "private_subnet_id") if k not in given]
        return _f(missing[0], "bring-your-own network needs vpc_id, public_subnet_id and private_subnet_id together")
    return []


def rule_efs_mode(spec: ClusterSpec) -> list[Finding]:
    found = check_choice(Document({}), "efs_performance_mode", spec.efs_performance_mode, EFS_PERFORMANCE_MODES)
    if spec.efs_id and spec.efs_performance_mode != "generalPurpose":
        found += _f("efs_performance_mode", "applies only to a new file system; leave it out with efs_id")
    return found


def rule_sizes(spec: ClusterSpec) -> list[Finding]:
    doc = Document({})
    return check_int_range(doc, "root_volume_gb", spec.root_volume_gb, 30, 16384) + check_int_range(
        doc, "wait_timeout", spec.wait_timeout, 300, 43200)


def rule_framework_packages(spec: ClusterSpec) -> list[Finding]:
    return [f for path in _PACKAGE_FIELDS if not re.match(PACKAGES_PATTERN, getattr(spec, path))
            for f in _f(path, f"{getattr(spec, path)!r} is not a list of pip requirements; give them separated by spaces, "
                              "each like name or name==version (letters, digits, . _ - + = ~ ,), e.g. mxnet==1.9.1 numpy==1.23.5")]


def rule_local_installs_nothing(spec: ClusterSpec) -> list[Finding]:
    """Not in RULES: `create-stack --local` adds it. A local cluster's hosts run this machine's
    Python, which has MXNet; given lists would be ignored, so they are an error instead."""
    return [f for fl in FRAMEWORK_LISTS if getattr(spec, fl.field) != fl.default
            for f in _f(fl.field, "a local cluster's hosts run this machine's Python with MXNet and install nothing; drop it for --local")]


def rule_key_name_required(spec: ClusterSpec) -> list[Finding]:
    """Not in RULES: create-stack adds it (a template renders fine without a key pair)."""
    return [] if spec.key_name else _f("key_name", "is required to SSH to the cluster; name an EC2 key pair of the region")


def rule_ssh_cidr_required(spec: ClusterSpec) -> list[Finding]:
    """Not in RULES: create-stack adds it (the template's SSHLocation has no default, on purpose)."""
    return [] if spec.ssh_cidr else _f("ssh_cidr", "is required: the CIDR allowed to SSH to the master, e.g. your address/32")


RULES: tuple[Rule, ...] = (rule_workers, rule_min_workers, rule_instance_types, rule_ssh_cidr, rule_region,
                           rule_ids, rule_byo_network, rule_efs_mode, rule_sizes, rule_framework_packages)


def validate_cluster(spec: ClusterSpec, *, require_key_name: bool = False, require_ssh_cidr: bool = False) -> list[Finding]:
    """Every finding of every rule (errors and warnings); create-stack asks for the two requirements."""
    rules = RULES + ((rule_key_name_required,) if require_key_name else ()) + ((rule_ssh_cidr_required,) if require_ssh_cidr else ())
    return [f for rule in rules for f in rule(spec)]


# -- building a spec from flags and cluster.yaml --------------------------------------------
def _coerce(name: str, value: Any) -> Any:
    """Flags arrive as strings; YAML as typed values. Ints and bools are parsed, the rest kept."""
    if name in _INT_FIELDS and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return value  # the range rule reports it with the allowed range
    if name in _BOOL_FIELDS and isinstance(value, str):
        lowered = value.strip().lower()
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(lowered, value)
    if name in _PACKAGE_FIELDS and isinstance(value, (str, list)):
        # One line of single-space-separated requirements, whether typed with more spaces, folded
        # in YAML or given as a YAML list.
        words = value.split() if isinstance(value, str) else [str(v) for v in value]
        return " ".join(words)
    if name not in _INT_FIELDS and name not in _BOOL_FIELDS and value is not None and not isinstance(value, str):
        return str(value)
    return value


def _load_config(config: Path) -> tuple[Document, dict[str, Any]]:
    try:
        text = config.read_text()
    except OSError as e:
        raise UserInputError(f"--config: cannot read {config}: {e.strerror}") from e
    doc = load_yaml_document(text, source=str(config))
    return doc, doc.data


def cluster_spec_from_options(options: Mapping[str, Any], config: Path | None = None, *,
                              require_key_name: bool = False, require_ssh_cidr: bool = False, local: bool = False) -> ClusterSpec:
    """A validated ClusterSpec: cluster.yaml keys overridden by CLI options (None = not given).

    Raises ValidationFailed with every finding: flags are named as typed (`--ssh-cidr`), YAML
    keys with file and line.
    """
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # field -> "flag" | "yaml"
    findings: list[Finding] = []
    doc = Document({})
    if config is not None:
        doc, data = _load_config(config)
        findings += check_unknown_keys(doc, data, SPEC_FIELDS + ("tags",))
        for key, value in data.items():
            if key in SPEC_FIELDS or key == "tags":
                values[key], origin[key] = value, "yaml"
    for key, value in options.items():
        if value is None:
            continue
        if key not in SPEC_FIELDS:
            findings.append(Finding(FLAGS.get(key, key), f"unknown option{_close(key)}"))
            continue
        values[key], origin[key] = value, "flag"
    coerced = {k: (_coerce(k, v) if k != "tags" else v) for k, v in values.items()}
    findings += _check_tags(doc, coerced.get("tags"))
    spec = ClusterSpec(**{k: v for k, v in coerced.items() if not (k == "tags" and not isinstance(v, dict))})
    for f in validate_cluster(spec, require_key_name=require_key_name, require_ssh_cidr=require_ssh_cidr) + (
            rule_local_installs_nothing(spec) if local else []):
        findings.append(_locate(f, origin.get(f.path, "flag"), doc))
    raise_for_findings(findings)
    return spec


def _close(key: str) -> str:
    from dlcfn.spec.schema import did_you_mean

    return did_you_mean(key, SPEC_FIELDS)


def _check_tags(doc: Document, tags: Any) -> list[Finding]:
    if tags is None:
        return []
    if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
        return [doc.finding("tags", "must be a mapping of tag key to value")]
    return []


def _locate(f: Finding, origin: str, doc: Document) -> Finding:
    """Name a finding after what the user typed: the flag, or the YAML key with its line."""
    if origin == "yaml":
        return Finding(f.path, f.message, f.level, doc.line(f.path), doc.source)
    return Finding(FLAGS.get(f.path, f.path), f.message, f.level)


def update_parameters(current: Mapping[str, str], options: Mapping[str, Any]) -> dict[str, str]:
    """The parameter values that change on `update-stack` (workers, worker_type, ssh_cidr).

    Validated like a new spec: raises ValidationFailed naming the flags.
    """
    base = ClusterSpec(
        workers=int(current.get(names.P_WORKER_COUNT, "1") or 1),
        worker_type=current.get(names.P_WORKER_TYPE, ClusterSpec.worker_type),
    )
    given = {k: v for k, v in options.items() if v is not None}
    findings = [Finding(FLAGS.get(k, k), "cannot be changed by update-stack") for k in given
                if k not in ("workers", "worker_type", "ssh_cidr", "min_workers")]
    coerced = {k: _coerce(k, v) for k, v in given.items() if k in SPEC_FIELDS}
    spec = dataclasses.replace(base, **coerced)
    wanted = {"workers", "worker_type", "ssh_cidr", "min_workers"} & set(coerced)
    findings += [_locate(f, "flag", Document({})) for f in validate_cluster(spec) if f.path in wanted]
    raise_for_findings(findings)
    out: dict[str, str] = {}
    if "workers" in coerced:
        out[names.P_WORKER_COUNT] = str(spec.workers)
        # MinWorkers may not exceed the new count; keep it where it still fits.
        old_min = int(current.get(names.P_MIN_WORKERS, "0") or 0)
        if "min_workers" not in coerced and (old_min > spec.workers or old_min == int(current.get(names.P_WORKER_COUNT, "0") or 0)):
            out[names.P_MIN_WORKERS] = str(spec.workers)
    if "min_workers" in coerced:
        out[names.P_MIN_WORKERS] = str(spec.min_workers)
    if "worker_type" in coerced:
        out[names.P_WORKER_TYPE] = spec.worker_type
    if "ssh_cidr" in coerced:
        out[names.P_SSH_LOCATION] = spec.ssh_cidr
    return out
