"""Node bootstrap: what every cluster instance runs once at boot, from UserData.

Owns the boot pipeline of one node: identity (IMDSv2) -> instance-role credentials -> EFS mount
-> GPU count (nvidia-smi) -> framework (pip into a venv) -> node state "ready" -> discovery over
SQS -> cluster files -> WaitCondition signal.
The node state file (`state_file`) says whether the node can run jobs: "ready" once its framework
is installed, "failed: <reason>" when a step before that failed, absent while it boots.
`dlcfn submit --cluster` reads it on every node: a worker added later (a resize, a replaced spot
worker) boots after the stack's WaitCondition is long done, and a job must not land on it early.
Master: waits for `asg-ready` of every group in `wait_groups` and a `hello` from every instance
those list, writes the files, posts the member list to the worker queue, signals SUCCESS.
Worker: posts its `hello`, reads the newest member list that names it, writes the same files.
Any failure signals FAILURE with a reason naming the node and the step, so the stack fails in
minutes. Nobody deletes queue messages: each reader sees all of them, so every worker, and a
second run, reads the same member list; files are rewritten whole, never appended.

Shipped to instances as one file: stdlib + boto3 only. Runnable as
`python3 bootstrap.py --role master|worker --config FILE.json`, callable as
`run_bootstrap(config, seams)`; every path sits under `config.root` and every contact with the
machine (identity, GPUs, mount, venv and pip, signal, clock) is a seam, for tests and the local
cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MASTER = "master"
WORKER = "worker"
BLOCK_BEGIN = "# BEGIN dlcfn cluster (rewritten by dlcfn bootstrap)"
BLOCK_END = "# END dlcfn cluster"
IMDS = "http://169.254.169.254/latest"
# nfs4 options AWS recommends for EFS; nfs-common/nfs-utils ship on both DLAMI families,
# amazon-efs-utils does not.
NFS_OPTIONS = "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport"

log = logging.getLogger("dlcfn.bootstrap")


class BootstrapFailure(Exception):
    """A step failed; the message is the readable reason sent to CloudFormation."""


@dataclass
class Config:
    role: str  # MASTER or WORKER
    region: str
    stack_name: str = ""
    master_queue_url: str = ""
    worker_queue_url: str = ""
    wait_handle_url: str = ""
    file_system_id: str = ""
    wait_groups: list[str] = field(default_factory=list)  # Auto Scaling groups the master waits for
    min_workers: int = 1
    endpoint_url: str = ""  # a moto server, for the local cluster
    # Set both to skip IMDS (the local cluster's hosts are not EC2 instances).
    instance_id: str = ""
    private_ip: str = ""
    root: str = "/"  # prefix of every path below
    hosts_file: str = "/opt/deeplearning/workers"
    etc_hosts: str = "/etc/hosts"
    fstab: str = "/etc/fstab"
    env_profile: str = "/etc/profile.d/dlcfn.sh"
    cluster_file: str = "/etc/dlcfn/cluster.json"
    state_file: str = "/opt/dlcfn/node-state"  # "ready" / "failed: <reason>" (see the module docstring)
    efs_mount: str = "/efs"
    identity_timeout_s: float = 120.0
    credentials_timeout_s: float = 300.0
    mount_attempts: int = 6
    mount_backoff_s: float = 5.0  # doubles after every failed attempt
    # How long discovery (master: asg-ready + hellos; worker: member list) may take. Unset, it
    # ends READY_MARGIN_S before the stack's ClusterReadyTimeout (counted from this run's start),
    # so the node signals why before CloudFormation times out without a reason; 1800 s without either.
    discovery_timeout_s: float | None = None
    ready_timeout_s: float = 0.0  # the stack's ClusterReadyTimeout
    poll_wait_s: int = 10  # SQS long poll
    # The master is the only reader of its queue: hiding what it has seen makes each receive
    # return new messages; they reappear for a second run after this many seconds.
    master_visibility_s: int = 30
    # The framework: pip requirements (space-separated) for nodes with GPUs and for nodes without,
    # installed into `framework_venv` before discovery. Both empty: nothing is installed (the AMI
    # has its framework) and jobs use python3. One empty: those nodes get a venv that sees the
    # system's packages, so the interpreter path the stack reports exists on every node.
    gpu_framework_packages: str = ""
    cpu_framework_packages: str = ""
    framework_venv: str = "/opt/dlcfn/venv"  # userdata.FRAMEWORK_PYTHON is its bin/python
    framework_module: str = "mxnet"  # imported after the install: a bad wheel fails the boot, not the first job
    venv_python: str = "/usr/bin/python3"  # the distribution's Python, which the pinned wheels support
    pip_options: list = field(default_factory=list)  # extra `pip install` options (tests: --no-index --find-links DIR)
    pip_attempts: int = 4
    pip_backoff_s: float = 15.0  # doubles after every failed attempt

    def path(self, name: str) -> Path:
        return Path(self.root) / getattr(self, name).lstrip("/")

    @classmethod
    def from_dict(cls, raw: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BootstrapFailure(f"config: unknown keys {', '.join(unknown)}")
        config = cls(**raw)
        config.min_workers = int(config.min_workers)
        config.ready_timeout_s = float(config.ready_timeout_s)
        if config.role not in (MASTER, WORKER):
            raise BootstrapFailure(f"config: role must be {MASTER} or {WORKER}, not {config.role!r}")
        return config


@dataclass(frozen=True)
class Identity:
    instance_id: str
    private_ip: str


@dataclass(frozen=True)
class Member:
    name: str  # "master", "worker-1", ... (workers ordered by instance id)
    role: str
    instance_id: str
    private_ip: str
    gpus: int

    @property
    def host(self) -> str:
        return "dlcfn-" + self.name

    @property
    def classic_host(self) -> str:
        return "deeplearning-" + self.name.replace("-", "")


@dataclass
class Result:
    role: str
    ok: bool
    reason: str = ""
    members: list[Member] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def imds_identity(base: str = IMDS) -> Identity:
    """Instance id and private IP from IMDSv2 (session token first, as the template enforces)."""
    token_req = urllib.request.Request(
        base + "/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}
    )
    with urllib.request.urlopen(token_req, timeout=5) as resp:
        token = resp.read().decode()

    def get(item: str) -> str:
        req = urllib.request.Request(f"{base}/meta-data/{item}", headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.read().decode().strip()

    return Identity(get("instance-id"), get("local-ipv4"))


def nvidia_gpu_count() -> int:
    """GPUs the hardware reports; a node without a working NVIDIA driver has none."""
    try:
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=120)
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        log.info("nvidia-smi unavailable (%s): 0 GPUs", e)
        return 0
    if out.returncode != 0:
        log.info("nvidia-smi exit %d (%s): 0 GPUs", out.returncode, out.stderr.strip()[:200])
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def mount_efs(file_system_id: str, mount_point: Path, region: str) -> None:
    """One NFS mount attempt; a mount point already in /proc/mounts is left as it is."""
    mounted = Path("/proc/mounts").read_text().split()
    if str(mount_point) in mounted:
        return
    mount_point.mkdir(parents=True, exist_ok=True)
    source = f"{file_system_id}.efs.{region}.amazonaws.com:/"
    cmd = ["mount", "-t", "nfs4", "-o", NFS_OPTIONS, source, str(mount_point)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise OSError(f"mount exit {out.returncode}: {out.stderr.strip()[:300]}")


def put_signal(url: str, body: dict) -> None:
    """PUT a WaitCondition signal; Content-Type must be empty for the presigned S3 URL."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"wait handle URL is not a URL: {url!r}")
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": ""})
    urllib.request.urlopen(req, timeout=30).close()


def run_tool(cmd: list, timeout: float) -> None:
    """Run a command, its output to the log; a failure raises with its last error line (pip's
    last `ERROR:` line says what it could not do)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired as e:
        raise OSError(f"{' '.join(cmd[:4])} timed out after {timeout:.0f} s") from e
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    log.info("%s: exit %d\n%s", " ".join(cmd[:4]), out.returncode, "\n".join(lines[-40:]))
    if out.returncode != 0:
        errors = [ln for ln in lines if ln.startswith("ERROR:")] or lines or ["no output"]
        raise OSError(f"exit {out.returncode}: {errors[-1][:400]}")


@dataclass
class Seams:
    identity: Callable[[], Identity] = imds_identity
    gpu_count: Callable[[], int] = nvidia_gpu_count
    mount: Callable[[str, Path, str], None] = mount_efs
    run: Callable[[list, float], None] = run_tool  # venv, pip and the framework's import check
    signal: Callable[[str, dict], None] = put_signal
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class Node:
    """What one run knows about the node it runs on."""

    config: Config
    seams: Seams
    identity: Identity | None = None
    gpus: int = 0
    python: str = "python3"  # what jobs run with: the framework venv's interpreter once installed
    ready: bool = False  # the state file says "ready": a later failure (discovery) does not undo that
    step: str = "start"
    session: object = None  # boto3 Session, set once credentials resolve
    clients: dict = field(default_factory=dict)
    started: float = field(init=False, default=0.0)  # seams.clock() when this run began

    def client(self, service: str, session: object = None):  # -> botocore client
        if session is not None:
            return session.client(service, endpoint_url=self.config.endpoint_url or None)
        if service not in self.clients:
            self.clients[service] = self.session.client(service, endpoint_url=self.config.endpoint_url or None)
        return self.clients[service]

    def new_session(self) -> object:
        import boto3  # imported here so `--help` and config errors need no boto3

        # A fresh session resolves credentials again: boto3's default one would cache a miss.
        return boto3.session.Session(region_name=self.config.region)

    def __post_init__(self) -> None:
        self.started = self.seams.clock()

    def deadline(self, seconds: float) -> float:
        return self.seams.clock() + seconds

    def discovery_window(self) -> float:
        """Seconds discovery may take from now (see Config.discovery_timeout_s)."""
        cfg = self.config
        if cfg.discovery_timeout_s is not None:
            return float(cfg.discovery_timeout_s)
        if cfg.ready_timeout_s > 0:
            return max(60.0, self.started + cfg.ready_timeout_s - READY_MARGIN_S - self.seams.clock())
        return 1800.0

    def left(self, deadline: float) -> float:
        return deadline - self.seams.clock()


def run_bootstrap(config: Config, seams: Seams | None = None) -> Result:
    """Run the whole pipeline for `config.role`; a failing step is signalled, not raised."""
    role = config.role
    node = Node(config=config, seams=seams or Seams())
    try:
        node.step = "identity"
        node.identity = identify(node)
        node.step = "credentials"
        wait_for_credentials(node)
        node.step = "efs mount"
        mount_with_retries(node)
        node.step = "gpu count"
        node.gpus = node.seams.gpu_count()
        node.step = "framework install"
        node.python = install_framework(node)
        node.step = "node state"
        write_atomically(config.path("state_file"), "ready\n")
        node.ready = True
        node.step = "discovery"
        members = discover_as_master(node) if role == MASTER else discover_as_worker(node)
        node.step = "cluster files"
        files = write_cluster_files(node, members)
        if role == MASTER:
            node.step = "publish"
            publish(node, members)
    except Exception as e:  # any failure, expected or not, becomes the stack's failure reason
        reason = describe_failure(node, e)
        log.error("FAILURE: %s", reason)
        if not node.ready:  # what `dlcfn submit` tells the user about this node
            try:
                write_atomically(config.path("state_file"), f"failed: {reason}\n")
            except OSError as state_error:
                log.warning("could not write the node state: %s", state_error)
        send_signal(node, "FAILURE", reason)
        return Result(role=role, ok=False, reason=reason)
    log.info("%s ready: %d members", role, len(members))
    return Result(role=role, ok=True, members=members, files=files)


def identify(node: Node) -> Identity:
    if node.config.instance_id and node.config.private_ip:
        return Identity(node.config.instance_id, node.config.private_ip)
    found = retry_until(node, node.config.identity_timeout_s, "no instance identity from IMDSv2", node.seams.identity)
    assert isinstance(found, Identity)
    return found


def describe_failure(node: Node, error: Exception) -> str:
    role = node.config.role
    who = f"{role} {node.identity.instance_id} ({node.identity.private_ip})" if node.identity else role
    detail = str(error) if isinstance(error, BootstrapFailure) else f"{type(error).__name__}: {error}"
    return f"dlcfn bootstrap on {who}, step {node.step}: {detail}"[:2000]


def send_signal(node: Node, status: str, reason: str, data: str = "") -> None:
    unique_id = node.identity.instance_id if node.identity else f"{node.config.role}-unknown"
    body = {"Status": status, "Reason": reason, "UniqueId": unique_id, "Data": data}
    try:
        node.seams.signal(node.config.wait_handle_url, body)
    except Exception as e:  # a signal that cannot be sent must not hide the original failure
        log.error("could not signal %s to the wait handle: %s", status, e)
        if status == "SUCCESS":
            raise


def retry_until(node: Node, seconds: float, failure: str, attempt: Callable[[], object]) -> object:
    """Call `attempt` with backoff until it returns; after `seconds`, fail with its last error."""
    deadline, delay, last = node.deadline(seconds), 1.0, "no attempt finished"
    while True:
        try:
            return attempt()
        except Exception as e:  # every error is retried; the last one goes into the reason
            last = f"{type(e).__name__}: {e}"
        if node.left(deadline) <= 0:
            raise BootstrapFailure(f"{failure} after {seconds:.0f} s ({last})")
        node.seams.sleep(min(delay, max(node.left(deadline), 0.0)))
        delay = min(delay * 2, 30.0)


def wait_for_credentials(node: Node) -> None:
    """The instance profile's credentials appear some seconds after boot: poll STS."""

    def attempt() -> object:
        session = node.new_session()
        node.client("sts", session).get_caller_identity()
        return session

    node.session = retry_until(node, node.config.credentials_timeout_s, "no instance-role credentials", attempt)


def mount_with_retries(node: Node) -> None:
    cfg = node.config
    if not cfg.file_system_id:
        log.info("no file system configured: skipping the EFS mount")
        return
    delay, last = cfg.mount_backoff_s, ""
    for attempt in range(1, cfg.mount_attempts + 1):
        try:
            node.seams.mount(cfg.file_system_id, cfg.path("efs_mount"), cfg.region)
            log.info("EFS %s mounted at %s", cfg.file_system_id, cfg.path("efs_mount"))
            return
        except Exception as e:  # mount errors differ by distribution: keep the text for the reason
            last = str(e)
            log.warning("EFS mount attempt %d/%d failed: %s", attempt, cfg.mount_attempts, last)
        if attempt < cfg.mount_attempts:
            node.seams.sleep(delay)
            delay *= 2
    raise BootstrapFailure(
        f"mounting EFS {cfg.file_system_id} at {cfg.efs_mount} failed {cfg.mount_attempts} times "
        f"(check the mount target's security group allows NFS 2049 from the nodes): {last}"
    )


def install_framework(node: Node) -> str:
    """pip-install the node's framework list into the venv (retried: it needs the network) and
    import it; returns the interpreter jobs should use. Bounded by the discovery window, so a
    stuck install still fails with a reason before the stack's timeout."""
    cfg = node.config
    gpu, cpu = cfg.gpu_framework_packages.split(), cfg.cpu_framework_packages.split()
    if not gpu and not cpu:
        log.info("no framework packages configured: jobs use the AMI's python3")
        return "python3"
    packages, venv = gpu if node.gpus else cpu, cfg.path("framework_venv")
    python, deadline = str(venv / "bin" / "python"), node.deadline(node.discovery_window())
    delay, last = cfg.pip_backoff_s, ""
    for attempt in range(1, cfg.pip_attempts + 1):
        try:
            if not (venv / "bin" / "pip").exists():  # pip is the last thing venv creates
                make_venv(node, venv, not packages)
            if packages:  # on a second run pip finds them satisfied and does nothing
                node.seams.run([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                                *cfg.pip_options, *packages], node.left(deadline))
            break
        except Exception as e:  # network, mirror or wheel trouble: keep pip's line for the reason
            last = str(e)
            log.warning("framework install attempt %d/%d failed: %s", attempt, cfg.pip_attempts, last)
        if attempt == cfg.pip_attempts or node.left(deadline) <= delay:
            raise BootstrapFailure(f"pip install {' '.join(packages)} failed {attempt} times: {last}")
        node.seams.sleep(delay)
        delay *= 2
    if packages:  # a wheel that does not import fails the boot, not the first job
        try:
            node.seams.run([python, "-c", "import " + cfg.framework_module], 600)
        except OSError as e:
            raise BootstrapFailure(f"import {cfg.framework_module} failed after pip install {' '.join(packages)}: {e}") from e
    return python


def make_venv(node: Node, venv: Path, system_site: bool) -> None:
    """A venv of the distribution's Python; a node whose own list is empty gets one that sees the
    system's packages, so that the interpreter path is the same on every node."""
    cmd = [node.config.venv_python, "-m", "venv", "--clear", *(["--system-site-packages"] * system_site), str(venv)]
    try:
        node.seams.run(cmd, 600)
    except OSError:
        if not shutil.which("apt-get"):
            raise
        # Ubuntu's python3 has no ensurepip until python3-venv is installed. At first boot
        # unattended-upgrades may hold dpkg's lock for minutes: wait for it rather than fail.
        wait = ["-o", "DPkg::Lock::Timeout=600"]
        for step in (["apt-get", *wait, "update", "-q"], ["apt-get", *wait, "install", "-y", "-q", "python3-venv"], cmd):
            node.seams.run(step, 600)


def receive_all(node: Node, queue_url: str, visibility: int, deadline: float) -> list[dict]:
    """One long-poll receive; returns message bodies with their SentTimestamp, never deletes."""
    wait = int(max(0, min(node.config.poll_wait_s, node.left(deadline))))
    resp = node.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
        VisibilityTimeout=visibility, AttributeNames=["SentTimestamp"],
    )
    bodies = []
    for message in resp.get("Messages", []):
        try:
            body = json.loads(message["Body"])
        except ValueError:
            log.warning("ignoring a non-JSON message %s", message.get("MessageId"))
            continue
        if isinstance(body, dict):
            body["_sent"] = int(message.get("Attributes", {}).get("SentTimestamp", "0"))
            bodies.append(body)
    return bodies


def newest(current: dict | None, candidate: dict) -> dict:
    return candidate if current is None or candidate["_sent"] >= current["_sent"] else current


def discover_as_master(node: Node) -> list[Member]:
    """Collect asg-ready per group and a hello per listed instance, until complete or timeout."""
    cfg = node.config
    window = node.discovery_window()
    deadline = node.deadline(window)
    ready: dict[str, dict] = {}
    hellos: dict[str, dict] = {}
    while True:
        for body in receive_all(node, cfg.master_queue_url, cfg.master_visibility_s, deadline):
            if body.get("type") == "asg-ready" and body.get("group") in cfg.wait_groups:
                ready[body["group"]] = newest(ready.get(body["group"]), body)
            elif body.get("type") == "hello" and body.get("instance_id"):
                hellos[body["instance_id"]] = newest(hellos.get(body["instance_id"]), body)
        expected = sorted({i for group in ready.values() for i in group.get("instances", [])})
        missing_groups = [g for g in cfg.wait_groups if g not in ready]
        missing_hellos = [i for i in expected if i not in hellos]
        if not missing_groups and not missing_hellos:
            break
        if node.left(deadline) <= 0:
            raise BootstrapFailure(discovery_timeout_reason(window, missing_groups, missing_hellos))
    if len(expected) < cfg.min_workers:
        raise BootstrapFailure(f"only {len(expected)} workers are ready, MinWorkers is {cfg.min_workers}")
    assert node.identity is not None
    master = Member("master", MASTER, node.identity.instance_id, node.identity.private_ip, node.gpus)
    workers = [
        Member(f"worker-{n}", WORKER, iid, hellos[iid]["private_ip"], int(hellos[iid]["gpus"]))
        for n, iid in enumerate(expected, start=1)
    ]
    return [master, *workers]


def discovery_timeout_reason(window: float, missing_groups: list[str], missing_hellos: list[str]) -> str:
    waited = f"{window:.0f} s"
    if missing_groups:
        return (
            f"no asg-ready for group {', '.join(missing_groups)} within {waited}: not every desired "
            "instance became InService and healthy (see the group's activity history and the ASG "
            "monitor Lambda's log)"
        )
    return (
        f"workers {', '.join(missing_hellos)} sent no hello within {waited} "
        "(see /var/log/dlcfn-bootstrap.log on them)"
    )


HELLO_REPEAT_S = 15.0  # seconds between a waiting worker's hellos
# Discovery ends this long before ClusterReadyTimeout runs out, counted from the bootstrap's start:
# the WaitCondition's clock starts before the node boots, and the FAILURE signal needs time too.
READY_MARGIN_S = 120.0


def discover_as_worker(node: Node) -> list[Member]:
    """Say hello to the master, then read (never consume) the newest member list naming us."""
    cfg = node.config
    assert node.identity is not None
    me = node.identity
    hello = {"type": "hello", "role": WORKER, "instance_id": me.instance_id, "private_ip": me.private_ip, "gpus": node.gpus}
    window = node.discovery_window()
    deadline = node.deadline(window)
    found: dict | None = None
    attempt, next_hello = 0, 0.0
    while found is None:
        # Said again now and then until a member list names us: the master keeps the newest per
        # instance, and one hello that never reached it (a queue mishap, a master that restarted
        # and lost what it had read) must not fail the whole cluster. `attempt` keeps FIFO
        # deduplication from dropping the repeats.
        if node.seams.clock() >= next_hello:
            attempt += 1
            send(node, cfg.master_queue_url, {**hello, "attempt": attempt}, group=me.instance_id)
            next_hello = node.seams.clock() + HELLO_REPEAT_S
        # Visibility 0: the message stays visible to the other workers at once.
        for body in receive_all(node, cfg.worker_queue_url, 0, deadline):
            ids = [m.get("instance_id") for m in body.get("members", [])]
            if body.get("type") == "members" and me.instance_id in ids:
                found = newest(found, body)
        if found is None and node.left(deadline) <= 0:
            raise BootstrapFailure(
                f"no member list naming {me.instance_id} within {window:.0f} s "
                "(the master failed or is still waiting: see the stack events)"
            )
    return [Member(**m) for m in found["members"]]


def send(node: Node, queue_url: str, body: dict, group: str) -> None:
    text = json.dumps(body, sort_keys=True)
    extra = {}
    if queue_url.endswith(".fifo"):
        extra = {"MessageGroupId": group, "MessageDeduplicationId": hashlib.sha256(text.encode()).hexdigest()}
    node.client("sqs").send_message(QueueUrl=queue_url, MessageBody=text, **extra)


def publish(node: Node, members: list[Member]) -> None:
    """Post the member list for the workers, then tell CloudFormation the cluster is up."""
    body = {"type": "members", "members": [dataclasses.asdict(m) for m in members]}
    send(node, node.config.worker_queue_url, body, group="members")
    summary = {"master": members[0].private_ip, "workers": len(members) - 1, "gpus": sum(m.gpus for m in members)}
    send_signal(node, "SUCCESS", f"{len(members)} nodes ready", json.dumps(summary, sort_keys=True))


def write_cluster_files(node: Node, members: list[Member]) -> list[Path]:
    cfg = node.config
    assert node.identity is not None
    me = next(m for m in members if m.instance_id == node.identity.instance_id)
    files = {
        cfg.path("hosts_file"): render_hosts_file(members),
        cfg.path("etc_hosts"): replace_block(read_text(cfg.path("etc_hosts")), etc_hosts_lines(members)),
        cfg.path("cluster_file"): render_cluster_file(cfg, members),
        cfg.path("env_profile"): render_env_profile(cfg, me, members, node.python),
    }
    if cfg.file_system_id:  # so a reboot mounts EFS again (UserData runs on the first boot only)
        files[cfg.path("fstab")] = replace_block(read_text(cfg.path("fstab")), fstab_lines(cfg))
    for path, text in files.items():
        write_atomically(path, text)
    return list(files)


def render_hosts_file(members: list[Member]) -> str:
    # A CPU-only node still runs one process: slots never drop below 1.
    return "".join(f"{m.host} slots={max(m.gpus, 1)}\n" for m in members)


def replace_block(existing: str, lines: list[str]) -> str:
    """Replace our marked block of a system file (or add it once); other lines stay as they were."""
    kept, inside = [], False
    for line in existing.splitlines():
        if line == BLOCK_BEGIN:
            inside = True
        elif line == BLOCK_END:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join([*kept, BLOCK_BEGIN, *lines, BLOCK_END]) + "\n"


def etc_hosts_lines(members: list[Member]) -> list[str]:
    return [f"{m.private_ip} {m.host} {m.classic_host}" for m in members]


def fstab_lines(cfg: Config) -> list[str]:
    # nofail: a reboot with EFS unreachable still boots; _netdev: mount after the network is up.
    source = f"{cfg.file_system_id}.efs.{cfg.region}.amazonaws.com:/"
    return [f"{source} {cfg.path('efs_mount')} nfs4 {NFS_OPTIONS},_netdev,nofail 0 0"]


def render_cluster_file(cfg: Config, members: list[Member]) -> str:
    doc = {"stack_name": cfg.stack_name, "region": cfg.region, "members": [dataclasses.asdict(m) for m in members]}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_env_profile(cfg: Config, me: Member, members: list[Member], python: str = "python3") -> str:
    efs = str(cfg.path("efs_mount")) if cfg.file_system_id else ""
    workers = [m for m in members if m.role == WORKER]
    env = {
        "DLCFN_ROLE": me.role,
        "DLCFN_NODE_NAME": me.name,
        "DLCFN_HOST": me.host,
        "DLCFN_INSTANCE_ID": me.instance_id,
        "DLCFN_PRIVATE_IP": me.private_ip,
        "DLCFN_GPUS": str(me.gpus),
        "DLCFN_STACK_NAME": cfg.stack_name,
        "DLCFN_REGION": cfg.region,
        "DLCFN_MASTER_HOST": members[0].host,
        "DLCFN_MASTER_IP": members[0].private_ip,
        "DLCFN_WORKER_HOSTS": " ".join(m.host for m in workers),
        "DLCFN_WORKER_IPS": " ".join(m.private_ip for m in workers),
        "DLCFN_NUM_NODES": str(len(members)),
        "DLCFN_NUM_WORKERS": str(len(workers)),
        "DLCFN_HOSTS_FILE": str(cfg.path("hosts_file")),
        "DLCFN_CLUSTER_FILE": str(cfg.path("cluster_file")),
        "DLCFN_EFS_MOUNT": efs,
        "DLCFN_PYTHON": python,
        # The classic Deep Learning CloudFormation template's names: its hosts file lists
        # every node, master included, so the count does too.
        "DEEPLEARNING_WORKERS_COUNT": str(len(members)),
        "DEEPLEARNING_WORKERS_PATH": str(cfg.path("hosts_file")),
        "DEEPLEARNING_WORKER_GPU_COUNT": str(me.gpus),
        "EFS_MOUNT": efs,
    }
    lines = ["# dlcfn cluster environment: rewritten by the dlcfn bootstrap on every run."]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    if python != "python3":  # logins get the framework venv's python, pip and tools first
        lines.append(f'export PATH={shlex.quote(str(Path(python).parent))}:"$PATH"')
    return "\n".join(lines) + "\n"


def read_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".dlcfn-tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


# Exit status after a failure that was signalled to CloudFormation; any other non-zero status
# tells UserData that nothing was signalled, so it signals itself.
EXIT_SIGNALLED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dlcfn node bootstrap")
    parser.add_argument("--role", choices=[MASTER, WORKER], required=True)
    parser.add_argument("--config", required=True, type=Path, help="JSON file of Config fields")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dlcfn-bootstrap %(levelname)s %(message)s")
    try:
        config = Config.from_dict({**json.loads(args.config.read_text()), "role": args.role})
    except (OSError, ValueError, TypeError, BootstrapFailure) as e:
        log.error("config %s: %s", args.config, e)
        return 1
    result = run_bootstrap(config)
    return 0 if result.ok else EXIT_SIGNALLED


if __name__ == "__main__":
    raise SystemExit(main())
