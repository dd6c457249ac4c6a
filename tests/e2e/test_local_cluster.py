"""End to end on the embedded local cluster, through the real CLI as subprocesses:
create-stack --local (2 workers) -> submit a dist_sync job -> update-stack to 3 workers -> submit
with 3 workers -> resize to 1 and back to 2 -> delete-stack, then nothing of the cluster is left running or on disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dlcfn.local.sshd import processes_with_env

DATA = Path(__file__).resolve().parent / "data"
NAME = "e2e"
BASE = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # arange(6), pushed times (rank + 1) by every worker


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line names `text` (the test's private DLCFN_HOME: sshd, moto, ranks)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def home() -> Iterator[Path]:
    """A private DLCFN_HOME under ~/.cache (sshd's StrictModes refuses keys below /tmp)."""
    base = Path.home() / ".cache" / "dlcfn-tests"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="e2e-", dir=base))
    os.chmod(root, 0o700)
    yield root
    # On failure: the CLI's own delete first, then whatever still names this home.
    subprocess.run([sys.executable, "-m", "dlcfn", "delete-stack", NAME, "--local", "--yes"], env=_env(root),
                   capture_output=True, timeout=60)
    for pid in _processes_mentioning(str(root)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(root, ignore_errors=True)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the local cluster needs no AWS set-up
    env["DLCFN_HOME"] = str(home)
    return env


def _dlcfn(home: Path, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "dlcfn", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_env(home))
    assert out.returncode == 0, f"dlcfn {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out


def _job(path: Path, workers: int) -> Path:
    path.write_text(yaml.safe_dump({"name": "kvpush", "script": "push.py", "python": sys.executable, "workdir": str(DATA / "kvpush"),
                                    "num_workers": workers, "num_servers": 1, "kvstore": "dist_sync", "timeout": 120,
                                    "results": ["out/*.json"], "env": {"OMP_NUM_THREADS": 1}}))
    return path


def _submit_and_check(home: Path, cwd: Path, workers: int, job_id: str) -> None:
    _dlcfn(home, cwd, "submit", str(_job(cwd / f"job{workers}.yaml", workers)), "--cluster", NAME, "--job-id", job_id)
    results = cwd / "results" / job_id
    record = json.loads((results / "job.json").read_text())
    assert {p["exit"] for p in record["processes"]} == {0}
    assert sorted(p["name"] for p in record["processes"] if p["name"].startswith("worker")) == [f"worker-{r}" for r in range(workers)]
    collected = sorted(results.rglob("out/worker-*.json"))
    assert len(collected) == workers
    factor = workers * (workers + 1) / 2  # sum of (rank + 1) over the workers
    for path in collected:
        got = json.loads(path.read_text())
        assert got["num_workers"] == workers
        assert [x for row in got["sum"] for x in row] == [b * factor for b in BASE]
    assert not [p for p in processes_with_env("DLCFN_JOB_ID", job_id) if p != os.getpid()]
    # the job's history and logs, read back through the CLI
    listed = [line.split() for line in _dlcfn(home, cwd, "jobs").stdout.splitlines()]
    assert [row[1] for row in listed if row and row[0] == job_id] == ["succeeded"]
    logs = _dlcfn(home, cwd, "logs", job_id).stdout.splitlines()
    pulled = sorted(line.split("]")[0] for line in logs if " pulled " in line)
    assert pulled == [f"[worker-{r}" for r in range(workers)]  # every worker's line, prefixed with its name


def _master_cluster_file(home: Path) -> list[str]:
    """The workers file the real bootstrap wrote under the master's host root (members by name)."""
    state = _state(home)
    hosts = json.loads((home / "clusters" / NAME / "hosts" / "hosts.json").read_text())["hosts"]
    root = Path(hosts[state["nodes"][0]["instance_id"]]["root"])
    return (root / "opt" / "deeplearning" / "workers").read_text().splitlines()


def _state(home: Path) -> dict:
    return json.loads((home / "clusters" / NAME / "state.json").read_text())


@pytest.mark.slow
def test_local_cluster_lifecycle(home: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    _dlcfn(home, cwd, "create-stack", NAME, "--local", "--workers", "2")
    state = _state(home)
    assert state["provider"] == "local" and [n["role"] for n in state["nodes"]] == ["master", "worker", "worker"]
    addresses = {n["private_ip"] for n in state["nodes"]}
    assert len(addresses) == 3 and all(a.startswith("127.") for a in addresses)
    assert len(_processes_mentioning(str(home / "clusters" / NAME / "hosts"))) >= 3  # one sshd listener per node
    # the real ASG monitor + bootstrap ran: every node is in the master's cluster files
    assert _master_cluster_file(home) == ["dlcfn-master slots=1", "dlcfn-worker-1 slots=1", "dlcfn-worker-2 slots=1"]

    _submit_and_check(home, cwd, 2, "e2e-2")

    _dlcfn(home, cwd, "update-stack", NAME, "--local", "--workers", "3", "--yes")
    assert len(_state(home)["nodes"]) == 4
    assert _master_cluster_file(home)[-1] == "dlcfn-worker-3 slots=1"
    _submit_and_check(home, cwd, 3, "e2e-3")

    # resized again, both ways: each boot reads only its own membership
    _dlcfn(home, cwd, "update-stack", NAME, "--local", "--workers", "1", "--yes")
    assert len(_state(home)["nodes"]) == 2
    assert len(_master_cluster_file(home)) == 2
    _dlcfn(home, cwd, "update-stack", NAME, "--local", "--workers", "2", "--yes")
    assert len(_state(home)["nodes"]) == 3
    assert len(_master_cluster_file(home)) == 3

    status = _dlcfn(home, cwd, "status", NAME, "--json")  # the record says local: no --local needed
    assert len(json.loads(status.stdout)["nodes"]) == 3

    out = _dlcfn(home, cwd, "delete-stack", NAME, "--yes")
    assert f"cluster {NAME} deleted" in out.stdout
    assert not _processes_mentioning(str(home))  # no sshd, moto server or rank of this cluster
    assert not (home / "clusters" / NAME).exists()
    again = _dlcfn(home, cwd, "delete-stack", NAME, "--local", "--yes")
    assert "does not exist" in again.stdout
