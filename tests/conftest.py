"""Shared fixtures: real local sshd hosts (started per test, always stopped) and a private DLCFN_HOME."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dlcfn.local.sshd import SshHostPool


@pytest.fixture
def ssh_pool_factory() -> Iterator[Callable[[int], SshHostPool]]:
    """make(count) -> a started SshHostPool. Its directory is under the home directory because
    sshd's StrictModes refuses keys below world-writable /tmp. Everything is stopped and removed
    at teardown, also when the test failed."""
    pools: list[SshHostPool] = []
    parent = Path.home() / ".cache" / "dlcfn-tests"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def make(count: int) -> SshHostPool:
        pool = SshHostPool(Path(tempfile.mkdtemp(dir=parent, prefix="hosts-")))
        pools.append(pool)
        pool.start(count)
        return pool

    yield make
    for pool in pools:
        pool.stop()
        shutil.rmtree(pool.base_dir, ignore_errors=True)


@pytest.fixture
def dlcfn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dlcfn-home"
    monkeypatch.setenv("DLCFN_HOME", str(home))
    return home


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def job_pids() -> Callable[[str], list[int]]:
    """job_pids(job_id): processes carrying the job's marker in their environment, on any host."""
    from dlcfn.local.sshd import processes_with_env

    return lambda job_id: [p for p in processes_with_env("DLCFN_JOB_ID", job_id) if p != os.getpid()]
