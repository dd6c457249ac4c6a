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
