"""bootstrap.py as UserData runs it: the copy the stack's UserData ships (unpacked from the
launch template moto holds), alone, as processes (`python3 -I bootstrap.py --role R --config F`)
with the config that UserData writes, against a moto server on 127.0.0.1, with the ASG-monitor
handler pointed at the same server. This is the path the embedded local cluster takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from dlcfn.node import asg_monitor, bootstrap, events
from dlcfn.node.events import SignalReceiver

from nodecluster import REGION, MotoCluster, make_cluster



@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=10).close()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": url,  # boto3 clients in this process, the handler's too
    }.items():
        monkeypatch.setenv(key, value)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:  # a failed assertion must not leave a bootstrap polling a dead server
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def start(
    processes: list[subprocess.Popen], cluster: MotoCluster, tmp: Path, name: str, role: str, config: dict
) -> subprocess.Popen:
    # One file per node: rewriting a shared one while the previous node's python still reads it
    # gave that node a truncated script (a SyntaxError, then "no hello" on the master).
    script = tmp / f"bootstrap-{name}.py"
    script.write_bytes(cluster.shipped_bootstrap(role))
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({**cluster.node_config(role), **config, "root": str(tmp / name)}))
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}  # the config names the endpoint
    proc = subprocess.Popen(
        [sys.executable, "-I", str(script), "--role", role, "--config", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp,
    )
    processes.append(proc)
    return proc


def test_processes_form_a_cluster(moto_server: str, receiver: SignalReceiver, processes, tmp_path: Path, monkeypatch) -> None:
    cluster = make_cluster(workers=2, min_workers=2)
    for key, value in {**cluster.lambda_env, "WAIT_HANDLE_URL": receiver.url}.items():
        monkeypatch.setenv(key, value)
    # No EFS here: the file system id from the stack is dropped, so no mount is attempted.
    common = {"endpoint_url": moto_server, "wait_handle_url": receiver.url, "file_system_id": "",
              "poll_wait_s": 1, "discovery_timeout_s": 60}
    workers = [
        start(processes, cluster, tmp_path, f"worker-{n}", "worker",
              {**common, "instance_id": iid, "private_ip": cluster.private_ip(iid)})
        for n, iid in enumerate(cluster.worker_ids(), start=1)
    ]
    for event in events.group_launch_events(cluster.client("autoscaling"), cluster.group):
        asg_monitor.handler(event, None)
    master = start(processes, cluster, tmp_path, "master", "master", {
        **common, "instance_id": cluster.master_id, "private_ip": cluster.master_ip,
    })

    outputs = [proc.communicate(timeout=120)[0] for proc in [master, *workers]]
    everything = "\n".join(f"--- {name}:\n{out}" for name, out in zip(["master", "worker-1", "worker-2"], outputs))
    assert [p.returncode for p in [master, *workers]] == [0, 0, 0], everything  # every node's log when one failed
    [signal] = receiver.signals
    assert signal.body["Status"] == "SUCCESS" and signal.body["UniqueId"] == cluster.master_id
    hosts = (tmp_path / "worker-2/opt/deeplearning/workers").read_text()
    # No nvidia-smi here: each node counts 0 GPUs and still gets one slot.
    assert hosts == "dlcfn-master slots=1\ndlcfn-worker-1 slots=1\ndlcfn-worker-2 slots=1\n"
    assert (tmp_path / "master/etc/hosts").read_text() == (tmp_path / "worker-1/etc/hosts").read_text()


def test_failed_process_signals_and_exits_3(moto_server: str, receiver: SignalReceiver, processes, tmp_path: Path) -> None:
    cluster = make_cluster(workers=1)
    proc = start(processes, cluster, tmp_path, "master", "master", {
        "endpoint_url": moto_server, "instance_id": cluster.master_id, "private_ip": cluster.master_ip,
        "wait_handle_url": receiver.url, "file_system_id": "", "poll_wait_s": 1, "discovery_timeout_s": 2,
    })
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == bootstrap.EXIT_SIGNALLED, out
    [signal] = receiver.signals
    assert signal.body["Status"] == "FAILURE" and f"no asg-ready for group {cluster.group}" in signal.body["Reason"]
    assert signal.body["Reason"] in out  # the node's log says the same as the stack event
