"""The interpreter a job runs with: the job's `python:` when it names one, else the cluster's node
Python (the framework venv its stack's parameters imply), else python3 on PATH (hosts files,
local clusters, state files from before the field)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dlcfn.cli import main
from dlcfn.inventory import ClusterState, Node, load_state, save_state
from dlcfn.launch.targets import from_cluster
from dlcfn.node.userdata import FRAMEWORK_PYTHON

MASTER_IP, WORKER_IP = "10.0.0.4", "10.0.1.5"


@pytest.fixture
def cluster_files(tmp_path: Path) -> tuple[Path, Path]:
    """A login key and a known_hosts naming both nodes: all that a dry run checks (it connects to nothing)."""
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"{MASTER_IP},3.3.3.3 {public}\n{WORKER_IP} {public}\n")
    return key, known


def save_cluster(home: Path, key: Path, known: Path, **fields: object) -> Path:
    state = ClusterState(name="c1", provider="aws", region="us-east-1", stack_name="c1", ssh_key=str(key), known_hosts=str(known),
                         nodes=[Node("master", "master", "i-m", state="running", private_ip=MASTER_IP, public_ip="3.3.3.3"),
                                Node("worker", "worker-1", "i-w", state="running", private_ip=WORKER_IP)], **fields)  # type: ignore[arg-type]
    path = home / "clusters" / "c1" / "state.json"
    save_state(path, state)
    return path


def dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], job_extra: str = "") -> str:
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "job.yaml").write_text(f"name: j\nscript: train.py\nnum_workers: 2\n{job_extra}")
    with pytest.raises(SystemExit) as info:
        main(["submit", str(tmp_path / "job.yaml"), "--cluster", "c1", "--dry-run", "--job-id", "dry"])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    return captured.out


def test_cluster_node_python_runs_jobs_that_name_none(cluster_files: tuple[Path, Path], dlcfn_home: Path, in_tmp_cwd: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_cluster(dlcfn_home, *cluster_files, node_python=FRAMEWORK_PYTHON)
    out = dry_run(tmp_path, capsys)
    assert f"  python {FRAMEWORK_PYTHON} (the cluster's node python)" in out
    assert f"  command: {FRAMEWORK_PYTHON} train.py" in out


def test_the_jobs_own_python_wins_even_when_it_is_python3(cluster_files: tuple[Path, Path], dlcfn_home: Path, in_tmp_cwd: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_cluster(dlcfn_home, *cluster_files, node_python=FRAMEWORK_PYTHON)
    out = dry_run(tmp_path, capsys, "python: python3\n")
    assert "  python python3 (the job's python)" in out and "  command: python3 train.py" in out


def test_state_file_without_node_python_loads_and_means_python3(cluster_files: tuple[Path, Path], dlcfn_home: Path, in_tmp_cwd: Path,
                                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_cluster(dlcfn_home, *cluster_files)
    old = json.loads(path.read_text())
    del old["node_python"]  # written by a dlcfn from before the field
    path.write_text(json.dumps(old))
    assert load_state(path, "c1").node_python == "" and from_cluster("c1").python == ""
    out = dry_run(tmp_path, capsys)
    assert "  python python3 (default)" in out and "  command: python3 train.py" in out
