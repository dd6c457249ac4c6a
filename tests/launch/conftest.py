"""Fixtures for job runs against real sshd hosts: write a job file, run `dlcfn submit` as a
subprocess (so that signals and exit codes are the real ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dlcfn.local.sshd import SshHostPool

DATA = Path(__file__).resolve().parent.parent / "data" / "jobs"


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[..., Path]:
    def write(workdir: str = "trivial", **fields: object) -> Path:
        spec = {"name": "t", "script": "train.py", "python": sys.executable, "workdir": str(DATA / workdir), **fields}
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    return write


def submit_args(pool: SshHostPool, job: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dlcfn", "submit", str(job), "--hosts", str(pool.hosts_file), "--ssh-key", str(pool.user_key),
            "--known-hosts", str(pool.known_hosts), *extra]


@pytest.fixture
def run_submit(in_tmp_cwd: Path, dlcfn_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(pool: SshHostPool, job: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(submit_args(pool, job, *extra), capture_output=True, text=True, timeout=timeout,
                              cwd=in_tmp_cwd, env={**os.environ, "DLCFN_HOME": str(dlcfn_home)})

    return run


@pytest.fixture
def start_submit(in_tmp_cwd: Path, dlcfn_home: Path):  # type: ignore[no-untyped-def]
    """Start `dlcfn submit` in the background (for signals); killed at teardown if still running."""
    procs: list[subprocess.Popen[str]] = []

    def start(pool: SshHostPool, job: Path, *extra: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(submit_args(pool, job, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=in_tmp_cwd, env={**os.environ, "DLCFN_HOME": str(dlcfn_home)})
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=30)


@pytest.fixture
def run_submit_cluster(in_tmp_cwd: Path, dlcfn_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(job: Path, cluster: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dlcfn", "submit", str(job), "--cluster", cluster, *extra], capture_output=True,
                              text=True, timeout=timeout, cwd=in_tmp_cwd, env={**os.environ, "DLCFN_HOME": str(dlcfn_home)})

    return run
