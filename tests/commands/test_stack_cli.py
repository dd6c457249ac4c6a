"""The stack commands through the real CLI entry point: ssh command lines, bad input (exit 2, no
AWS call), and the whole lifecycle against a standalone moto server via AWS_ENDPOINT_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlcfn.inventory import ClusterState, Node, save_state


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlcfn", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(DLCFN_HOME=str(tmp_path / "home"), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"))
    return env


# -- ssh ---------------------------------------------------------------------------------------

def cluster_state(home: Path, known: list[str]) -> ClusterState:
    known_hosts = home / "clusters" / "c1" / "known_hosts"
    state = ClusterState(
        name="c1", provider="aws", region="us-east-1", stack_name="c1", ssh_key="/keys/c1.pem", known_hosts=str(known_hosts),
        nodes=[Node("master", "master", "i-m", private_ip="10.0.0.4", public_ip="127.0.0.9"),
               Node("worker", "worker-1", "i-1", private_ip="10.0.1.5"), Node("worker", "worker-2", "i-2", private_ip="10.0.1.6")],
        host_key_note="host keys unknown for worker-2: their console output has no SSH host key block yet (still booting?)")
    save_state(home / "clusters" / "c1" / "state.json", state)
    known_hosts.write_text("".join(f"{addr} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey\n" for addr in known))
    return state


@pytest.fixture
def fake_ssh(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    """A `ssh` first on PATH that prints its argv, one per line: proves what dlcfn execs."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n")
    (bindir / "ssh").chmod(0o755)
    return {**cli_env, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_ssh_master_execs_system_ssh_with_strict_host_keys(fake_ssh: dict[str, str]) -> None:
    home = Path(fake_ssh["DLCFN_HOME"])
    state = cluster_state(home, ["10.0.0.4,127.0.0.9", "10.0.1.5"])
    out = run_cli("ssh", "c1", "--", "nvidia-smi", "-L", env=fake_ssh)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
        "-i", "/keys/c1.pem", "-p", "22", "ubuntu@127.0.0.9", "nvidia-smi", "-L"]


def test_ssh_worker_goes_through_the_master_with_the_same_checks(fake_ssh: dict[str, str]) -> None:
    home = Path(fake_ssh["DLCFN_HOME"])
    state = cluster_state(home, ["10.0.0.4,127.0.0.9", "10.0.1.5"])
    out = run_cli("ssh", "c1", "--node", "worker-1", env=fake_ssh)
    assert out.returncode == 0, out.stderr
    argv = out.stdout.splitlines()
    strict = ["-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    proxy = next(a for a in argv if a.startswith("ProxyCommand="))
    assert argv[:4] == strict and argv[-1] == "ubuntu@10.0.1.5"
    assert proxy == f"ProxyCommand=ssh -o UserKnownHostsFile={state.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i /keys/c1.pem -p 22 -W %h:%p ubuntu@127.0.0.9"


def test_ssh_refuses_a_node_whose_host_key_is_unknown(fake_ssh: dict[str, str]) -> None:
    cluster_state(Path(fake_ssh["DLCFN_HOME"]), ["10.0.0.4,127.0.0.9", "10.0.1.5"])
    out = run_cli("ssh", "c1", "--node", "worker-2", env=fake_ssh)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == ("dlcfn: error: worker-2 (10.0.1.6): SSH host key unknown, refusing to connect (host keys unknown for worker-2: "
                                  "their console output has no SSH host key block yet (still booting?)); run `dlcfn status c1` once the node has booted")


def test_ssh_host_on_another_port_needs_its_bracketed_known_hosts_entry(fake_ssh: dict[str, str]) -> None:
    """ssh records hosts on ports other than 22 as [addr]:port (local clusters use high ports)."""
    home = Path(fake_ssh["DLCFN_HOME"])
    state = cluster_state(home, ["[127.0.0.9]:2201"])
    state.nodes[0].ssh_port = 2201
    save_state(home / "clusters" / "c1" / "state.json", state)
    out = run_cli("ssh", "c1", env=fake_ssh)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-3:] == ["-p", "2201", "ubuntu@127.0.0.9"]
    # the bare address on port 22 is a different host for ssh: not accepted for port 2201
    (home / "clusters" / "c1" / "known_hosts").write_text("127.0.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey\n")
    out = run_cli("ssh", "c1", env=fake_ssh)
    assert out.returncode == 1 and "SSH host key unknown" in out.stderr


def test_ssh_unknown_node_and_unknown_cluster(fake_ssh: dict[str, str]) -> None:
    cluster_state(Path(fake_ssh["DLCFN_HOME"]), ["127.0.0.9"])
    out = run_cli("ssh", "c1", "--node", "worker-9", env=fake_ssh)
    assert out.returncode == 2 and "--node: cluster 'c1' has no node 'worker-9'; nodes: master, worker-1, worker-2" in out.stderr
    out = run_cli("ssh", "nope", env=fake_ssh)
    assert out.returncode == 2 and "cluster 'nope' is not known here" in out.stderr


# -- AWS access errors, --local, and a recording endpoint ------------------------------------------

class Recorder:
    """An HTTP endpoint on 127.0.0.1 that records every request and answers 500: with
    AWS_ENDPOINT_URL pointing here, any AWS call dlcfn makes is seen (and none succeeds)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's spelling)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode(errors="replace")
                recorder.requests.append(f"{self.command} {self.path} {body[:200]}")
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def recorder() -> object:
    rec = Recorder()
    yield rec
    rec.close()


def test_missing_credentials_and_region_are_one_line(cli_env: dict[str, str], recorder: Recorder) -> None:
    env = {k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_ENDPOINT_URL=recorder.url, AWS_EC2_METADATA_DISABLED="true")
    out = run_cli("list", env=env)
    assert out.returncode == 1, out.stderr
    assert out.stderr.splitlines() == ["dlcfn: error: list stacks: no AWS credentials found; set AWS_PROFILE or --profile, "
                                       "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`"]
    env = {k: v for k, v in cli_env.items() if k != "AWS_DEFAULT_REGION"}
    env["AWS_ENDPOINT_URL"] = recorder.url
    out = run_cli("status", "c1", env=env)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["dlcfn: error: no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or set a region in your AWS profile"]
    assert recorder.requests == []


def test_local_provider_missing_is_a_clear_error(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import dlcfn.provider
    from dlcfn.cli import main

    for key, value in cli_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dlcfn.provider, "LOCAL_PROVIDER", "dlcfn.local.no_such_provider")
    with pytest.raises(SystemExit) as info:
        main(["status", "c1", "--local"])
    assert info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "dlcfn: error: --local: the local provider is not available in this dlcfn build "
        "(dlcfn.local.no_such_provider is missing); run without --local to use AWS"]


def test_local_dispatches_to_the_local_provider_module(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import types

    import dlcfn.provider
    from dlcfn.cli import main
    from dlcfn.provider import ClusterSummary

    class FakeLocal:
        def list(self) -> list[ClusterSummary]:
            return [ClusterSummary("laptop", "CREATE_COMPLETE", "local", "", "2")]

    module = types.ModuleType("fake_local_provider")
    module.make_provider = lambda home, options: FakeLocal()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_local_provider", module)
    monkeypatch.setattr(dlcfn.provider, "LOCAL_PROVIDER", "fake_local_provider")
    for key, value in cli_env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        main(["list", "--local"])
    assert info.value.code == 0
    assert capsys.readouterr().out.split() == ["NAME", "STATUS", "WORKERS", "REGION", "CREATED", "laptop", "CREATE_COMPLETE", "2", "local"]


# -- the whole lifecycle against a standalone moto server, through the CLI entry point -----------

@pytest.fixture(scope="module")
def moto_server() -> object:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_env(moto_server: str, cli_env: dict[str, str]) -> dict[str, str]:
    import urllib.request

    # a failed create poisons a moto server: every test starts from a reset one
    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10).read()
    seed_ami_parameter(moto_server)
    return {**cli_env, "AWS_ENDPOINT_URL": moto_server}


AMI_PARAMETER = "/dlcfn/test/ami-id"


def seed_ami_parameter(url: str, region: str = "us-east-1") -> None:
    """AWS publishes the Deep Learning AMI id as a public SSM parameter; moto has no such
    parameter and refuses to create /aws/ names, so the tests name their own with
    --ami-ssm-parameter (a user option) and put one of moto's AMIs there."""
    import boto3

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    ec2 = session.client("ec2", endpoint_url=url)
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    session.client("ssm", endpoint_url=url).put_parameter(Name=AMI_PARAMETER, Value=ami, Type="String", Overwrite=True)


def moto_snapshot(env: dict[str, str]) -> dict[str, set[str]]:
    import boto3
    import moto_resources

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return moto_resources.snapshot(lambda service: session.client(service, endpoint_url=env["AWS_ENDPOINT_URL"]))


CREATE_FLAGS = ["--key-name", "dlcfn-test", "--ssh-cidr", "203.0.113.7/32", "--ami-ssm-parameter", AMI_PARAMETER]


@pytest.mark.slow
def test_lifecycle_through_the_cli_against_a_moto_server(moto_env: dict[str, str]) -> None:
    import json

    before = moto_snapshot(moto_env)
    out = run_cli("create-stack", "alpha", "--workers", "2", *CREATE_FLAGS, "--json", env=moto_env)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["stack_status"] == "CREATE_COMPLETE" and created["endpoint_url"] == moto_env["AWS_ENDPOINT_URL"]
    assert [n["name"] for n in created["nodes"]] == ["master", "worker-1", "worker-2"]
    # progress went to stderr as JSON lines (pipe + --json): the stack's events (moto reports the
    # stack's own only), then the nodes
    records = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    updates = [(r["subject"], r["status"]) for r in records if r["event"] == "update"]
    assert updates == [("alpha", "CREATE_IN_PROGRESS"), ("alpha", "CREATE_COMPLETE"),
                       ("master", "running"), ("worker-1", "running"), ("worker-2", "running")]

    out = run_cli("create-stack", "beta", "--workers", "1", *CREATE_FLAGS, env=moto_env)
    assert out.returncode == 0, out.stderr
    assert "cluster beta is ready: master + 1 workers running" in out.stderr
    assert out.stdout.splitlines()[0] == "cluster beta: CREATE_COMPLETE (aws, us-east-1)"

    out = run_cli("create-stack", "beta", "--workers", "1", *CREATE_FLAGS, env=moto_env)
    assert out.returncode == 1 and "cluster 'beta' already exists in us-east-1" in out.stderr

    out = run_cli("list", "--json", env=moto_env)
    assert [(c["name"], c["workers"]) for c in json.loads(out.stdout)] == [("alpha", "2"), ("beta", "1")]

    out = run_cli("status", "alpha", env=moto_env)
    assert out.returncode == 0 and [line.split()[1] for line in out.stdout.splitlines() if line.startswith(("master ", "worker "))] == [
        "master", "worker-1", "worker-2"]
    assert "note: host keys unknown for master, worker-1, worker-2: moto has no console output with SSH host keys" in out.stdout

    out = run_cli("update-stack", "alpha", "--workers", "4", "--yes", "--json", env=moto_env)
    assert out.returncode == 0, out.stderr
    assert [n["name"] for n in json.loads(out.stdout)["nodes"]] == ["master", "worker-1", "worker-2", "worker-3", "worker-4"]
    assert any(r.get("text", "").strip() == f"parameter WorkerCount: 2 -> 4" for r in map(json.loads, out.stderr.splitlines()))
    out = run_cli("status", "alpha", "--json", env=moto_env)
    assert len(json.loads(out.stdout)["nodes"]) == 5

    out = run_cli("update-stack", "alpha", "--workers", "3", env={**moto_env}, timeout=60)  # no --yes, no tty: asks, reads EOF
    assert out.returncode != 0 and "apply these changes to alpha?" in out.stderr
    assert len(json.loads(run_cli("status", "alpha", "--json", env=moto_env).stdout)["nodes"]) == 5

    for name in ("alpha", "beta"):
        out = run_cli("delete-stack", name, "--yes", env=moto_env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0] == f"cluster {name} deleted"
    out = run_cli("delete-stack", "alpha", "--yes", env=moto_env)
    assert out.returncode == 0 and out.stdout.strip() == "cluster alpha does not exist; nothing to delete"
    assert run_cli("list", env=moto_env).stdout.strip() == "no dlcfn clusters here"
    assert not (Path(moto_env["DLCFN_HOME"]) / "clusters" / "alpha").exists()
    assert moto_snapshot(moto_env) == before


# -- bad input: one line naming the field, exit 2, not one AWS call --------------------------------

GOOD = ["--key-name", "dlcfn-test", "--ssh-cidr", "203.0.113.7/32"]
BAD_FLAGS = [  # (flags, expected start of the single error line after "dlcfn: error: ")
    (["--workers", "0", *GOOD], "--workers: must be from 1 to 1000, got 0"),
    (["--workers", "100000", *GOOD], "--workers: must be from 1 to 1000, got 100000"),
    (["--workers", "two", *GOOD], "--workers: must be an integer from 1 to 1000, got 'two'"),
    (["--worker-type", "banana.large", *GOOD], "--worker-type: 'banana.large' is not allowed"),
    (["--worker-type", "g5.xlarg", *GOOD], "--worker-type: 'g5.xlarg' is not allowed (did you mean 'g5.xlarge'?)"),
    (["--master-type", "m5.hugelarge", *GOOD], "--master-type: 'm5.hugelarge' is not allowed"),
    (["--key-name", "dlcfn-test", "--ssh-cidr", "10.0.0.300/33"], "--ssh-cidr: '10.0.0.300/33' is not an IPv4 CIDR"),
    (["--key-name", "dlcfn-test", "--ssh-cidr", "10.0.0.0"], "--ssh-cidr: '10.0.0.0' is not an IPv4 CIDR"),
    (["--region", "eu-centrall-1", *GOOD], "--region: 'eu-centrall-1' is not allowed (did you mean 'eu-central-1'?)"),
    (["--region", "mars-north-1", *GOOD], "--region: 'mars-north-1' is not allowed"),
    (["--ssh-cidr", "203.0.113.7/32"], "--key-name: is required to SSH to the cluster"),
    (["--efs-id", "fs-xyz", *GOOD], "--efs-id: 'fs-xyz' is not valid; expected fs- followed by 8 or 17 hex digits"),
    (["--image-id", "ami-123", *GOOD], "--image-id: 'ami-123' is not valid"),
    (["--workers", "2", "--min-workers", "5", *GOOD], "--min-workers: must be from 1 to 2, got 5"),
    (["--root-volume-gb", "10", *GOOD], "--root-volume-gb: must be from 30 to 16384, got 10"),
    (["--availability-zone", "useast1a", *GOOD], "--availability-zone: 'useast1a' is not valid"),
    (["--vpc-id", "vpc-0123abcd", *GOOD], "--public-subnet-id: bring-your-own network needs"),
    (["--efs-performance-mode", "fast", *GOOD], "--efs-performance-mode: 'fast' is not allowed"),
    (["--wait-timeout", "5", *GOOD], "--wait-timeout: must be from 300 to 43200, got 5"),
]
BAD_YAML = [  # (cluster.yaml text, expected start of the error line; the file is named cluster.yaml)
    ("workers: 2\nworkerz: 3\n", "cluster.yaml:2: workerz: unknown key (did you mean 'workers'?)"),
    ("worker_typ: g5.xlarge\n", "cluster.yaml:1: worker_typ: unknown key (did you mean 'worker_type'?)"),
    ("workers: many\n", "cluster.yaml:1: workers: must be an integer from 1 to 1000, got 'many'"),
    ("workers: 0\n", "cluster.yaml:1: workers: must be from 1 to 1000, got 0"),
    ("key_name: k\nssh_cidr: 300.1.1.1/8\n", "cluster.yaml:2: ssh_cidr: '300.1.1.1/8' is not an IPv4 CIDR"),
    ("worker_type: banana.large\n", "cluster.yaml:1: worker_type: 'banana.large' is not allowed"),
    ("region: eu-west-9\n", "cluster.yaml:1: region: 'eu-west-9' is not allowed"),
    ("workers: [1, 2\n", "cluster.yaml:2: invalid YAML"),
]


def run_in_process(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from dlcfn.cli import main

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(("flags", "expected"), BAD_FLAGS, ids=[e.split(":")[0] + "-" + str(i) for i, (_, e) in enumerate(BAD_FLAGS)])
def test_bad_flags_exit_2_with_one_line_and_no_aws_call(flags: list[str], expected: str, cli_env: dict[str, str], recorder: Recorder,
                                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_in_process(["create-stack", "c1", *flags], {**cli_env, "AWS_ENDPOINT_URL": recorder.url}, monkeypatch, capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dlcfn: error: {expected}"), err
    assert recorder.requests == []


@pytest.mark.parametrize(("text", "expected"), BAD_YAML, ids=[f"yaml-{i}" for i in range(len(BAD_YAML))])
def test_bad_cluster_yaml_exit_2_with_one_line_and_no_aws_call(text: str, expected: str, tmp_path: Path, cli_env: dict[str, str],
                                                               recorder: Recorder, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text(text)
    monkeypatch.chdir(tmp_path)
    code, err = run_in_process(["create-stack", "c1", "--config", "cluster.yaml", "--key-name", "k"],
                               {**cli_env, "AWS_ENDPOINT_URL": recorder.url}, monkeypatch, capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dlcfn: error: {expected}"), err
    assert recorder.requests == []


def test_bad_inputs_through_the_real_entry_point_report_every_finding(cli_env: dict[str, str], recorder: Recorder) -> None:
    out = run_cli("create-stack", "9lives", "--workers", "0", "--worker-type", "g5.xlarg", "--ssh-cidr", "1.2.3.4/40",
                  env={**cli_env, "AWS_ENDPOINT_URL": recorder.url})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    fields = [line.split(": ")[2] if line.startswith("dlcfn: error: ") else line.split(": ")[0] for line in out.stderr.splitlines()]
    assert fields == ["NAME", "--workers", "--worker-type", "--ssh-cidr", "--key-name"]
    assert recorder.requests == []


def test_update_with_bad_values_exits_2_and_changes_nothing(moto_env: dict[str, str]) -> None:
    out = run_cli("update-stack", "nope", "--workers", "0", "--yes", env=moto_env)
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = run_cli("update-stack", "c1", env=moto_env)
    assert out.returncode == 2 and "nothing to change" in out.stderr


def test_dry_run_validates_renders_and_creates_nothing(cli_env: dict[str, str], recorder: Recorder) -> None:
    out = run_cli("create-stack", "plan-only", "--workers", "3", "--worker-type", "p3.2xlarge", *GOOD, "--dry-run", "--target", "aws",
                  env={**cli_env, "AWS_ENDPOINT_URL": recorder.url})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "plan: create stack 'plan-only' in us-east-1 (aws template); nothing was created"
    assert "  WorkerCount = 3" in lines and "  WorkerInstanceType = p3.2xlarge" in lines and "  SSHLocation = 203.0.113.7/32" in lines
    assert any(line.split() == ["1", "AWS::AutoScaling::AutoScalingGroup"] for line in lines)
    assert any(line.split() == ["1", "AWS::CloudFormation::WaitCondition"] for line in lines)  # the AWS variant waits for the nodes
    assert recorder.requests == []


def test_no_wait_returns_once_the_stack_is_accepted(moto_env: dict[str, str]) -> None:
    import json

    seed_ami_parameter(moto_env["AWS_ENDPOINT_URL"], "eu-west-1")
    out = run_cli("create-stack", "quick", "--workers", "1", *CREATE_FLAGS, "--region", "eu-west-1", "--no-wait", "--json", env=moto_env)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["nodes"] == [] and state["stack_status"] == "CREATE_IN_PROGRESS" and state["region"] == "eu-west-1"
    # the default region is us-east-1: status finds the cluster through the region recorded at create
    status = json.loads(run_cli("status", "quick", "--json", env=moto_env).stdout)
    assert status["stack_status"] == "CREATE_COMPLETE" and len(status["nodes"]) == 2 and status["region"] == "eu-west-1"
    assert run_cli("list", env=moto_env).stdout.strip() == "no dlcfn clusters here"  # list is per region
    assert run_cli("delete-stack", "quick", "--yes", env=moto_env).returncode == 0
    assert json.loads(run_cli("list", "--region", "eu-west-1", "--json", env=moto_env).stdout) == []


def test_progress_in_a_terminal_is_a_live_rich_table(moto_env: dict[str, str]) -> None:
    """stderr on a pseudo-terminal: dlcfn draws the rich table (styled) instead of plain lines."""
    import pty
    import select

    master_fd, slave_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dlcfn", "create-stack", "tty", "--workers", "1", *CREATE_FLAGS],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave_fd,
                            env={**moto_env, "TERM": "xterm-256color", "COLUMNS": "160"})
    os.close(slave_fd)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master_fd], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(master_fd, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master_fd)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, screen
    assert "\x1b[" in screen and ("┃" in screen or "│" in screen)  # styled, drawn as a table
    final = screen[screen.rfind("create-stack tty"):]
    for word in ("tty", "CREATE_COMPLETE", "master", "worker-1", "running"):
        assert word in final
    assert stdout.decode().startswith("cluster tty: CREATE_COMPLETE")  # results stay plain on stdout
    assert run_cli("delete-stack", "tty", "--yes", env=moto_env).returncode == 0


def test_local_cluster_refuses_framework_lists_before_creating_anything(cli_env: dict[str, str], tmp_path: Path) -> None:
    home = Path(cli_env["DLCFN_HOME"])
    out = run_cli("create-stack", "fw", "--local", "--workers", "1", "--cpu-framework-packages", "mxnet==1.9.1", env=cli_env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "dlcfn: error: --cpu-framework-packages: a local cluster's hosts run this machine's "
        "Python with MXNet and install nothing; drop it for --local"]
    assert not (home / "clusters" / "fw").exists()
