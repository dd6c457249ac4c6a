"""The node bootstrap in-process against moto: a master and two workers under temporary roots,
discovering each other through the real queues and the real ASG-monitor handler; signals go
over HTTP to a local wait handle."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dlcfn.node import asg_monitor, bootstrap, events
from dlcfn.node.bootstrap import Config, Identity, Result, Seams
from dlcfn.node.events import SignalReceiver

from nodecluster import REGION, MotoCluster, make_cluster

MASTER_GPUS = 8
WORKER_GPUS = 4
ETC_HOSTS_BEFORE = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"


@dataclass
class Recorder:
    """Seams that stand in for the machine: mounts become directories, sleeps are recorded."""

    mounts: list[tuple[str, Path, str]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def mount(self, fs_id: str, mount_point: Path, region: str) -> None:
        self.mounts.append((fs_id, mount_point, region))
        mount_point.mkdir(parents=True, exist_ok=True)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@dataclass
class Harness:
    cluster: MotoCluster
    receiver: SignalReceiver
    tmp: Path
    recorder: Recorder = field(default_factory=Recorder)

    def root(self, name: str) -> Path:
        root = self.tmp / name
        etc_hosts = root / "etc" / "hosts"
        if not etc_hosts.exists():
            etc_hosts.parent.mkdir(parents=True)
            etc_hosts.write_text(ETC_HOSTS_BEFORE)
        return root

    def config(self, role: str, root: Path, **overrides: object) -> Config:
        """The config the stack's UserData writes, with the local wait handle, root and timeouts."""
        values: dict = dict(
            self.cluster.node_config(role), role=role, wait_handle_url=self.receiver.url, root=str(root),
            discovery_timeout_s=60, poll_wait_s=1, master_visibility_s=0, credentials_timeout_s=10,
        )
        values.update(overrides)
        return Config.from_dict(values)

    def seams(self, instance_id: str, private_ip: str, gpus: int) -> Seams:
        return Seams(
            identity=lambda: Identity(instance_id, private_ip), gpu_count=lambda: gpus,
            mount=self.recorder.mount, sleep=self.recorder.sleep,
        )

    def run_master(self, **overrides: object) -> Result:
        config = self.config(bootstrap.MASTER, self.root("master"), **overrides)
        return bootstrap.run_bootstrap(config, self.seams(self.cluster.master_id, self.cluster.master_ip, MASTER_GPUS))

    def run_worker(self, n: int, instance_id: str, **overrides: object) -> Result:
        config = self.config(bootstrap.WORKER, self.root(f"worker-{n}"), **overrides)
        return bootstrap.run_bootstrap(config, self.seams(instance_id, self.cluster.private_ip(instance_id), WORKER_GPUS))

    def run_cluster(self) -> tuple[Result, list[Result]]:
        """Workers boot first (they wait), the Lambda sees the launches, then the master boots."""
        ids = self.cluster.worker_ids()
        with ThreadPoolExecutor(max_workers=len(ids)) as pool:
            futures = [pool.submit(self.run_worker, n, iid) for n, iid in enumerate(ids, start=1)]
            for event in events.group_launch_events(self.cluster.client("autoscaling"), self.cluster.group):
                asg_monitor.handler(event, None)
            master = self.run_master()
            return master, [f.result(timeout=120) for f in futures]

    def snapshot(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.tmp)): p.read_bytes() for p in sorted(self.tmp.rglob("*")) if p.is_file()}


def lambda_env(cluster: MotoCluster, receiver: SignalReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**cluster.lambda_env, "WAIT_HANDLE_URL": receiver.url}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def harness(aws, receiver: SignalReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    cluster = make_cluster(workers=2, min_workers=2)
    lambda_env(cluster, receiver, monkeypatch)
    return Harness(cluster, receiver, tmp_path)


def sourced_env(profile: Path) -> dict[str, str]:
    """What a login shell gets from the profile (it must be valid shell to get anything)."""
    out = subprocess.run(
        ["bash", "-c", f'set -e; source "{profile}"; env -0'], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_master_and_two_workers_write_the_cluster_files(harness: Harness) -> None:
    master, workers = harness.run_cluster()
    assert master.ok, master.reason
    assert all(w.ok for w in workers), [w.reason for w in workers]
    cluster, tmp = harness.cluster, harness.tmp
    w1, w2 = cluster.worker_ids()
    ip1, ip2 = cluster.private_ip(w1), cluster.private_ip(w2)

    hosts = (tmp / "master/opt/deeplearning/workers").read_text()
    assert hosts == "dlcfn-master slots=8\ndlcfn-worker-1 slots=4\ndlcfn-worker-2 slots=4\n"
    for node in ("master", "worker-1", "worker-2"):  # what `dlcfn submit --cluster` checks first
        assert (tmp / node / "opt/dlcfn/node-state").read_text() == "ready\n"
    assert (tmp / "master/etc/hosts").read_text() == ETC_HOSTS_BEFORE + (
        f"{bootstrap.BLOCK_BEGIN}\n{cluster.master_ip} dlcfn-master deeplearning-master\n"
        f"{ip1} dlcfn-worker-1 deeplearning-worker1\n{ip2} dlcfn-worker-2 deeplearning-worker2\n{bootstrap.BLOCK_END}\n"
    )
    members = json.loads((tmp / "master/etc/dlcfn/cluster.json").read_text())["members"]
    assert [(m["name"], m["instance_id"], m["gpus"]) for m in members] == [
        ("master", cluster.master_id, 8), ("worker-1", w1, 4), ("worker-2", w2, 4)
    ]
    # Every node holds the same cluster files; only the profile says who it is.
    for name in ("worker-1", "worker-2"):
        for shared in ("opt/deeplearning/workers", "etc/hosts", "etc/dlcfn/cluster.json"):
            assert (tmp / name / shared).read_text() == (tmp / "master" / shared).read_text()

    env = sourced_env(tmp / "master/etc/profile.d/dlcfn.sh")
    assert env["DLCFN_ROLE"] == "master" and env["DLCFN_MASTER_IP"] == cluster.master_ip
    assert env["DLCFN_WORKER_HOSTS"] == "dlcfn-worker-1 dlcfn-worker-2" and env["DLCFN_WORKER_IPS"] == f"{ip1} {ip2}"
    assert env["DEEPLEARNING_WORKERS_COUNT"] == "3" and env["DEEPLEARNING_WORKER_GPU_COUNT"] == "8"
    assert env["DEEPLEARNING_WORKERS_PATH"] == str(tmp / "master/opt/deeplearning/workers")
    assert env["EFS_MOUNT"] == env["DLCFN_EFS_MOUNT"] == str(tmp / "master/efs")
    worker_env = sourced_env(tmp / "worker-2/etc/profile.d/dlcfn.sh")
    assert (worker_env["DLCFN_ROLE"], worker_env["DLCFN_NODE_NAME"], worker_env["DLCFN_INSTANCE_ID"]) == ("worker", "worker-2", w2)
    assert worker_env["DEEPLEARNING_WORKER_GPU_COUNT"] == "4"

    assert sorted(m[0] for m in harness.recorder.mounts) == [cluster.file_system_id] * 3
    fstab = (tmp / "worker-1/etc/fstab").read_text().splitlines()
    assert fstab[1:] == [
        f"{cluster.file_system_id}.efs.{REGION}.amazonaws.com:/ {tmp}/worker-1/efs nfs4 {bootstrap.NFS_OPTIONS},_netdev,nofail 0 0",
        bootstrap.BLOCK_END,
    ]
    [signal] = harness.receiver.signals
    assert signal.body["Status"] == "SUCCESS" and signal.body["UniqueId"] == cluster.master_id
    assert json.loads(signal.body["Data"]) == {"master": cluster.master_ip, "workers": 2, "gpus": 16}


def test_second_run_produces_identical_files(harness: Harness) -> None:
    first_master, _ = harness.run_cluster()
    assert first_master.ok, first_master.reason
    before = harness.snapshot()
    master, workers = harness.run_cluster()
    assert master.ok and all(w.ok for w in workers)
    assert harness.snapshot() == before
    for name in ("etc/hosts", "etc/fstab"):
        assert (harness.tmp / "master" / name).read_text().count(bootstrap.BLOCK_BEGIN) == 1


def test_missing_asg_ready_fails_with_a_reason(harness: Harness) -> None:
    result = harness.run_master(discovery_timeout_s=2)
    assert not result.ok
    expected = f"no asg-ready for group {harness.cluster.group} within 2 s"
    assert expected in result.reason and harness.cluster.master_id in result.reason and "step discovery" in result.reason
    [signal] = harness.receiver.signals
    assert signal.body["Status"] == "FAILURE" and signal.body["Reason"] == result.reason
    assert signal.body["UniqueId"] == harness.cluster.master_id
    assert not (harness.tmp / "master/opt/deeplearning/workers").exists()


def test_silent_workers_fail_the_master_with_their_ids(harness: Harness) -> None:
    for event in events.group_launch_events(harness.cluster.client("autoscaling"), harness.cluster.group):
        asg_monitor.handler(event, None)
    result = harness.run_master(discovery_timeout_s=2)
    assert not result.ok
    w1, w2 = harness.cluster.worker_ids()
    assert f"workers {w1}, {w2} sent no hello within 2 s" in result.reason


def test_worker_without_member_list_fails(harness: Harness) -> None:
    [w1, _] = harness.cluster.worker_ids()
    result = harness.run_worker(1, w1, discovery_timeout_s=2)
    assert not result.ok and f"no member list naming {w1} within 2 s" in result.reason
    [signal] = harness.receiver.signals
    assert signal.body["Status"] == "FAILURE" and signal.body["UniqueId"] == w1
    # its framework was in place before discovery: it can run jobs (a worker added by a resize
    # never gets a member list, the stack's WaitCondition being long done)
    assert (harness.tmp / "worker-1/opt/dlcfn/node-state").read_text() == "ready\n"


def test_waiting_worker_says_hello_again(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hello that never reached the master must not fail the cluster: a waiting worker repeats it."""
    monkeypatch.setattr(bootstrap, "HELLO_REPEAT_S", 0.5)
    [w1, _] = harness.cluster.worker_ids()
    result = harness.run_worker(1, w1, discovery_timeout_s=2)  # nobody answers: it gives up after 2 s
    assert not result.ok
    queue = harness.config(bootstrap.MASTER, harness.root("master")).master_queue_url
    sqs = harness.cluster.client("sqs")
    hellos = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        hellos += [json.loads(m["Body"]) for m in messages]
    attempts = sorted(h["attempt"] for h in hellos if h["type"] == "hello" and h["instance_id"] == w1)
    assert len(attempts) >= 3 and attempts == list(range(1, len(attempts) + 1))


def test_efs_mount_retries_with_backoff_then_fails(harness: Harness) -> None:
    attempts = []

    def broken_mount(fs_id: str, mount_point: Path, region: str) -> None:
        attempts.append(mount_point)
        raise OSError("mount.nfs4: Connection timed out")

    seams = harness.seams(harness.cluster.master_id, harness.cluster.master_ip, 0)
    seams.mount = broken_mount
    config = harness.config(bootstrap.MASTER, harness.root("master"), mount_attempts=4, mount_backoff_s=2)
    result = bootstrap.run_bootstrap(config, seams)
    assert len(attempts) == 4 and harness.recorder.sleeps == [2, 4, 8]
    assert not result.ok and "step efs mount" in result.reason
    assert f"mounting EFS {harness.cluster.file_system_id} at /efs failed 4 times" in result.reason and "Connection timed out" in result.reason
    assert harness.receiver.signals[0].body["Status"] == "FAILURE"
    assert (harness.tmp / "master/opt/dlcfn/node-state").read_text() == f"failed: {result.reason}\n"


def test_missing_credentials_time_out_with_a_reason(harness: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    now = [0.0]
    seams = harness.seams(harness.cluster.master_id, harness.cluster.master_ip, 0)
    seams.clock = lambda: now[0]
    seams.sleep = lambda s: now.__setitem__(0, now[0] + s)
    result = bootstrap.run_bootstrap(harness.config(bootstrap.MASTER, harness.root("master"), credentials_timeout_s=60), seams)
    assert not result.ok and "step credentials: no instance-role credentials after 60 s" in result.reason
    assert "NoCredentialsError" in result.reason
    assert harness.recorder.mounts == []  # nothing after the failing step ran


def test_no_file_system_skips_the_mount_and_leaves_efs_empty(harness: Harness) -> None:
    ids = harness.cluster.worker_ids()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(harness.run_worker, n, iid, file_system_id="") for n, iid in enumerate(ids, 1)]
        for event in events.group_launch_events(harness.cluster.client("autoscaling"), harness.cluster.group):
            asg_monitor.handler(event, None)
        master = harness.run_master(file_system_id="")
        assert all(f.result(timeout=120).ok for f in futures)
    assert master.ok and harness.recorder.mounts == []
    assert sourced_env(harness.tmp / "master/etc/profile.d/dlcfn.sh")["EFS_MOUNT"] == ""
    assert not (harness.tmp / "master/etc/fstab").exists()


def test_gpu_count_comes_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n[ \"$1\" = --list-gpus ] || exit 2\n"
        "echo 'GPU 0: Tesla V100-SXM2-16GB (UUID: GPU-1)'\necho 'GPU 1: Tesla V100-SXM2-16GB (UUID: GPU-2)'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert bootstrap.nvidia_gpu_count() == 2
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    assert bootstrap.nvidia_gpu_count() == 0
    fake.unlink()
    assert bootstrap.nvidia_gpu_count() == 0


def test_config_rejects_unknown_keys_and_roles() -> None:
    with pytest.raises(bootstrap.BootstrapFailure, match="unknown keys wait_group"):
        Config.from_dict({"role": "master", "region": REGION, "wait_group": ["x"]})
    with pytest.raises(bootstrap.BootstrapFailure, match="role must be master or worker"):
        Config.from_dict({"role": "head", "region": REGION})


def test_bootstrap_is_a_self_contained_script(tmp_path: Path) -> None:
    """What UserData runs: the file alone, isolated from dlcfn (-I), nothing but stdlib + boto3."""
    script = Path(bootstrap.__file__)
    copy = tmp_path / "bootstrap.py"
    copy.write_bytes(script.read_bytes())
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"region": REGION, "no_such_key": 1}))
    out = subprocess.run([sys.executable, "-I", str(copy), "--role", "worker", "--config", str(bad)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1 and "unknown keys no_such_key" in out.stderr


class FakeImds(BaseHTTPRequestHandler):
    """IMDSv2 as EC2 serves it: a PUT for a token, then GETs that must carry it (401 without)."""

    token = "tok-123"

    def do_PUT(self) -> None:  # noqa: N802
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.reply(200 if ok else 400, self.token if ok else "")

    def do_GET(self) -> None:  # noqa: N802
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            return self.reply(401, "")
        items = {"/latest/meta-data/instance-id": "i-0abc", "/latest/meta-data/local-ipv4": "10.0.1.7"}
        return self.reply(200 if self.path in items else 404, items.get(self.path, ""))

    def reply(self, status: int, text: str) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: object) -> None:
        return


def test_identity_comes_from_imdsv2() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/latest"
        assert bootstrap.imds_identity(base) == Identity("i-0abc", "10.0.1.7")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_identity_is_retried_until_imds_answers(harness: Harness) -> None:
    calls = []

    def flaky_identity() -> Identity:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("connection refused")
        return Identity(harness.cluster.master_id, harness.cluster.master_ip)

    seams = harness.seams(harness.cluster.master_id, harness.cluster.master_ip, 0)
    seams.identity = flaky_identity
    result = bootstrap.run_bootstrap(harness.config(bootstrap.MASTER, harness.root("master"), discovery_timeout_s=1), seams)
    assert len(calls) == 3 and harness.recorder.sleeps[:2] == [1.0, 2.0]
    assert "step discovery" in result.reason  # it got past identity, then had no asg-ready


def test_bootstrap_parses_as_python_37() -> None:
    """Amazon Linux 2 DLAMIs run Python 3.7: no syntax newer than that in the shipped file."""
    import ast

    ast.parse(Path(bootstrap.__file__).read_text(), feature_version=(3, 7))


def test_cluster_forms_over_fifo_queues(aws, receiver: SignalReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_cluster(workers=2, min_workers=2, fifo=True)
    lambda_env(cluster, receiver, monkeypatch)
    harness = Harness(cluster, receiver, tmp_path)
    master, workers = harness.run_cluster()
    assert master.ok and all(w.ok for w in workers), [master.reason] + [w.reason for w in workers]
    before = harness.snapshot()
    assert harness.run_cluster()[0].ok and harness.snapshot() == before


def test_stack_userdata_configures_the_bootstrap(harness: Harness) -> None:
    """What Fn::Sub put into the launch templates' UserData under moto."""
    cluster = harness.cluster
    master, worker = cluster.node_config("master"), cluster.node_config("worker")
    assert master["wait_groups"] == [cluster.group] == [f"{cluster.stack_name}-workers"]
    assert master["min_workers"] == "2" and "wait_groups" not in worker
    for config in (master, worker):
        assert (config["master_queue_url"], config["worker_queue_url"]) == (cluster.master_queue_url, cluster.worker_queue_url)
        assert config["file_system_id"] == cluster.file_system_id and config["region"] == REGION
        # moto's Ref of a WaitConditionHandle is None: the local wait handle must replace it.
        assert config["wait_handle_url"] == "None"
        # The moto variant's framework lists default to empty (the local cluster's hosts have MXNet).
        assert config["gpu_framework_packages"] == config["cpu_framework_packages"] == ""
    shipped = cluster.shipped_bootstrap("master").decode()
    import ast

    ast.parse(shipped, feature_version=(3, 7))  # the minified copy still parses for AL2's Python
    assert shipped == cluster.shipped_bootstrap("worker").decode()


def test_discovery_window_follows_the_stacks_ready_timeout(harness: Harness) -> None:
    """Unset, discovery ends READY_MARGIN_S before ClusterReadyTimeout (which the UserData config
    carries), counted from the run's start: the node says why before CloudFormation times out."""
    config = harness.config(bootstrap.MASTER, harness.root("master"), discovery_timeout_s=None)
    assert config.ready_timeout_s == 3600  # the stack's ClusterReadyTimeout default, through UserData
    now = [1000.0]
    seams = Seams(clock=lambda: now[0])
    node = bootstrap.Node(config=config, seams=seams)
    now[0] += 100  # identity, credentials, the EFS mount
    assert node.discovery_window() == 3600 - bootstrap.READY_MARGIN_S - 100
    now[0] += 3600
    assert node.discovery_window() == 60  # a floor: one more look at the queue
    explicit = bootstrap.Node(config=harness.config(bootstrap.MASTER, harness.root("master"), discovery_timeout_s=5), seams=seams)
    assert explicit.discovery_window() == 5
    bare = bootstrap.Node(config=harness.config(bootstrap.MASTER, harness.root("master"), discovery_timeout_s=None, ready_timeout_s=0),
                          seams=seams)
    assert bare.discovery_window() == 1800


def test_master_gives_up_before_the_stack_does(harness: Harness) -> None:
    """ClusterReadyTimeout 300 s: no asg-ready ever comes, and the master signals FAILURE with the
    reason within 300 - READY_MARGIN_S seconds of its start (a clock that moves 10 s per look)."""
    import itertools
    import re

    ticks = itertools.count(0, 10)
    seams = harness.seams(harness.cluster.master_id, harness.cluster.master_ip, MASTER_GPUS)
    seams.clock = lambda: float(next(ticks))
    config = harness.config(bootstrap.MASTER, harness.root("master"), discovery_timeout_s=None, ready_timeout_s=300, poll_wait_s=0)
    result = bootstrap.run_bootstrap(config, seams)
    waited = re.search(r"no asg-ready for group \S+ within (\d+) s", result.reason)
    assert not result.ok and waited, result.reason
    assert 60 <= int(waited.group(1)) <= 300 - bootstrap.READY_MARGIN_S
    [signal] = harness.receiver.signals
    assert signal.body["Status"] == "FAILURE"
