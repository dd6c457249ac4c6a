"""Fixtures for the training-job tests (helpers live in jobprocs.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobprocs import JOBS, PYTHON, ProcessGroup, job_env


@pytest.fixture
def processes() -> Iterator[ProcessGroup]:
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.kill_all()


@pytest.fixture
def run_script(tmp_path: Path, processes: ProcessGroup) -> Callable[..., str]:
    """run(script, *args, deadline=120) -> its output; fails the test on a non-zero
    exit or when the deadline passes (the process group is killed either way)."""

    def run(script: str, *args: str, deadline: float = 120, name: str = "run") -> str:
        log = tmp_path / f"{name}.log"
        proc = processes.start([PYTHON, str(JOBS / script), *args], job_env(), log)
        try:
            rc = proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{script} still running after {deadline}s:\n{log.read_text()[-3000:]}")
        text = log.read_text()
        assert rc == 0, f"{script} exited {rc}:\n{text[-3000:]}"
        return text

    return run
