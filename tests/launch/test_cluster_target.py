"""`submit --cluster NAME`: hosts from the cluster's inventory, workers reached through the master
(jump host), and a shared file system that gets the code once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlcfn.inventory import ClusterState, Node, save_state

pytestmark = pytest.mark.slow


def write_state(pool, home: Path, shared_dir: str = "", node_python: str = "") -> None:  # type: ignore[no-untyped-def]
    master, *workers = pool.hosts
    nodes = [Node("master", "master", "i-0", state="running", private_ip=master.address, public_ip=master.address, ssh_port=master.port)]
    nodes += [Node("worker", f"worker-{i}", f"i-{i}", state="running", private_ip=h.address, ssh_port=h.port)
              for i, h in enumerate(workers, 1)]
    nodes.append(Node("worker", "worker-9", "i-9", state="terminated", private_ip="127.0.0.9", ssh_port=1))  # skipped
    state = ClusterState(name="c1", provider="local", region="us-east-1", stack_name="dlcfn-c1", ssh_user="root",
                         ssh_key=str(pool.user_key), known_hosts=str(pool.known_hosts), shared_dir=shared_dir, nodes=nodes,
                         node_python=node_python)
    save_state(home / "clusters" / "c1" / "state.json", state)


def test_cluster_through_jump_host(ssh_pool_factory, write_job, run_submit_cluster, job_pids, dlcfn_home: Path, in_tmp_cwd: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    write_state(pool, dlcfn_home)
    out = run_submit_cluster(write_job(num_workers=2, num_servers=1, timeout=60, results=["out/*.txt"]), "c1", "--job-id", "cl1")
    assert out.returncode == 0, out.stderr
    record = json.loads((in_tmp_cwd / "results" / "cl1" / "job.json").read_text())
    assert {p["name"]: p["host"] for p in record["processes"]} == {
        "scheduler-0": "master", "worker-0": "master", "worker-1": "worker-1", "server-0": "worker-2"}
    targets = {h["name"]: h["target"] for h in record["plan"]["hosts"]}
    assert targets["worker-1"]["jump"]["name"] == "master" and targets["master"]["jump"] is None
    assert sorted(p.name for p in (in_tmp_cwd / "results" / "cl1").glob("*/out/*.txt")) == [
        "scheduler-0.txt", "server-0.txt", "worker-0.txt", "worker-1.txt"]
    # each node had the workdir (its ranks ran the shipped train.py there) and its job dir is gone
    assert not any((h.root / ".dlcfn" / "jobs" / "cl1").exists() for h in pool.hosts)
    assert all((h.root / ".dlcfn" / "jobs").is_dir() for h in pool.hosts)
    assert not job_pids("cl1")


def test_shared_dir_ships_once_and_collects_once(ssh_pool_factory, write_job, run_submit_cluster, dlcfn_home: Path,
                                                 in_tmp_cwd: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    shared = tmp_path / "efs"
    shared.mkdir()
    write_state(pool, dlcfn_home, shared_dir=str(shared))
    # setup runs in the workdir on every host: the shared copy, with no copy in the host's own dir
    probe = '[ -e "$DLCFN_NODE_ROOT/.dlcfn/jobs/sh1/work/train.py" ] && echo LOCAL-COPY || echo "NO-LOCAL-COPY $(ls train.py)"'
    out = run_submit_cluster(write_job(num_workers=2, num_servers=1, timeout=60, results=["out/*.txt"], setup=[probe]),
                             "c1", "--job-id", "sh1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("NO-LOCAL-COPY train.py") == 2 and "] LOCAL-COPY" not in out.stdout, out.stdout
    assert not (shared / ".dlcfn" / "jobs" / "sh1").exists()  # removed once the results were home
    assert not any((h.root / ".dlcfn" / "jobs" / "sh1").exists() for h in pool.hosts)
    got = sorted(p.relative_to(in_tmp_cwd / "results" / "sh1").as_posix() for p in (in_tmp_cwd / "results" / "sh1").rglob("*.txt"))
    assert got == [f"shared/out/{n}.txt" for n in ("scheduler-0", "server-0", "worker-0", "worker-1")]


def test_nodes_that_install_their_framework_must_say_ready(ssh_pool_factory, write_job, run_submit_cluster, job_pids,  # type: ignore[no-untyped-def]
                                                            dlcfn_home: Path, in_tmp_cwd: Path) -> None:
    """A cluster whose nodes pip-install their framework at boot: a worker still booting (no
    node state file yet, e.g. added by a resize) or one whose boot failed stops the submit with
    one message naming it, before anything is shipped or started; all ready, the job runs."""
    from dlcfn.node.userdata import FRAMEWORK_PYTHON, NODE_STATE_FILE

    pool = ssh_pool_factory(3)
    write_state(pool, dlcfn_home, node_python=FRAMEWORK_PYTHON)
    job = write_job(num_workers=2, num_servers=1, timeout=60)  # names its python: the venv is not needed here

    def node_state(host, text: str | None) -> None:  # type: ignore[no-untyped-def]
        f = host.root / NODE_STATE_FILE.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            f.unlink(missing_ok=True)
        else:
            f.write_text(text)

    master, w1, w2 = pool.hosts
    for host in (master, w1):
        node_state(host, "ready\n")
    out = run_submit_cluster(job, "c1", "--job-id", "rd1")
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"dlcfn: error: worker-2 still booting: no {NODE_STATE_FILE} saying ready yet (installing the framework?); nothing was "
        "started; submit again in a few minutes, or follow it with `dlcfn ssh c1 --node worker-2 -- tail -f /var/log/dlcfn-bootstrap.log`"]
    assert not any((h.root / ".dlcfn").exists() for h in pool.hosts) and not job_pids("rd1")

    node_state(w2, "failed: dlcfn bootstrap on worker i-2 (10.0.1.9), step framework install: pip install mxnet failed 4 times\n")
    out = run_submit_cluster(job, "c1", "--job-id", "rd2")
    assert out.returncode == 1
    assert out.stderr.startswith("dlcfn: error: worker-2 failed to boot (dlcfn bootstrap on worker i-2 (10.0.1.9), step framework "
                                 "install: pip install mxnet failed 4 times); see /var/log/dlcfn-bootstrap.log there")
    assert len(out.stderr.splitlines()) == 1 and not any((h.root / ".dlcfn").exists() for h in pool.hosts)

    node_state(w2, "ready\n")
    out = run_submit_cluster(job, "c1", "--job-id", "rd3")
    assert out.returncode == 0, out.stderr
    assert not job_pids("rd3")


def test_wait_until_ready_follows_booting_nodes_to_ready_or_failed(ssh_pool_factory, dlcfn_home: Path,  # type: ignore[no-untyped-def]
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What update-stack does after a resize: poll every node over SSH until each says ready;
    a node that fails to boot ends the wait with its reason, the timeout with who is still booting."""
    import io

    from dlcfn.errors import DlcfnError
    from dlcfn.launch.nodestate import wait_until_ready
    from dlcfn.node.userdata import FRAMEWORK_PYTHON, NODE_STATE_FILE
    from dlcfn.progress import Look, Progress

    monkeypatch.setenv("DLCFN_HOME", str(dlcfn_home))
    pool = ssh_pool_factory(3)
    write_state(pool, dlcfn_home, node_python=FRAMEWORK_PYTHON)
    files = [h.root / NODE_STATE_FILE.lstrip("/") for h in pool.hosts]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
    files[0].write_text("ready\n")
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the nodes boot while the waiter sleeps: one more per poll
        sleeps.append(seconds)
        now[0] += seconds
        next(f for f in files if not f.exists()).write_text("ready\n")

    stream = io.StringIO()
    with Progress("t", Look.PLAIN, stream=stream) as progress:
        wait_until_ready("c1", progress, timeout_s=600, refresh=lambda: None, sleep=sleep, monotonic=lambda: now[0], poll_s=15)
    assert sleeps == [15, 15] and "every node is ready to run jobs" in stream.getvalue()

    files[2].write_text("failed: step framework install: pip install mxnet failed 4 times\n")
    with Progress("t", Look.PLAIN, stream=io.StringIO()) as progress, pytest.raises(DlcfnError) as failed:
        wait_until_ready("c1", progress, timeout_s=600, refresh=lambda: None, sleep=sleep, monotonic=lambda: now[0])
    assert failed.value.message == "worker-2 failed to boot (step framework install: pip install mxnet failed 4 times)"

    files[2].unlink()
    with Progress("t", Look.PLAIN, stream=io.StringIO()) as progress, pytest.raises(DlcfnError) as late:
        wait_until_ready("c1", progress, timeout_s=30, refresh=lambda: None, sleep=lambda s: now.__setitem__(0, now[0] + s),
                         monotonic=lambda: now[0], poll_s=15)
    assert late.value.message == "cluster c1: nodes not ready after 30 s (booting: worker-2)"


def test_wait_until_ready_without_a_key_file_says_so_and_returns(ssh_pool_factory, dlcfn_home: Path,  # type: ignore[no-untyped-def]
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting could not help a cluster whose SSH key is not on this machine: a note, no wait."""
    import io

    from dlcfn.inventory import load_state
    from dlcfn.launch.nodestate import wait_until_ready
    from dlcfn.node.userdata import FRAMEWORK_PYTHON
    from dlcfn.progress import Look, Progress

    monkeypatch.setenv("DLCFN_HOME", str(dlcfn_home))
    pool = ssh_pool_factory(2)
    write_state(pool, dlcfn_home, node_python=FRAMEWORK_PYTHON)
    path = dlcfn_home / "clusters" / "c1" / "state.json"
    state = load_state(path, "c1")
    state.ssh_key = str(dlcfn_home / "gone.pem")
    save_state(path, state)

    def no_sleep(seconds: float) -> None:
        raise AssertionError("it waited")

    stream = io.StringIO()
    with Progress("t", Look.PLAIN, stream=stream) as progress:
        wait_until_ready("c1", progress, timeout_s=600, refresh=lambda: None, sleep=no_sleep, monotonic=lambda: 0.0)
    assert f"not waiting for the nodes to report ready: no SSH key at {dlcfn_home / 'gone.pem'}" in stream.getvalue()
