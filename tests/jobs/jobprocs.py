"""Helpers for the training-job tests: real job processes, alone or as a real MXNet kvstore
cluster (scheduler + servers + workers as local processes with the DMLC variables), with a
deadline so a hang fails the test, and every process killed afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pytest

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "jobs"
PYTHON = sys.executable

if str(JOBS) not in sys.path:  # unit tests import the shared job code directly
    sys.path.insert(0, str(JOBS))


def job_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMLC_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_metrics(output: Path, rank: int = 0) -> dict:
    return json.loads((output / f"rank-{rank}" / "metrics.json").read_text())


@dataclass
class ProcessGroup:
    """Processes started in their own sessions; ``kill_all`` ends each one's whole group."""

    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            proc.wait(timeout=10)


def run_kvstore_cluster(processes: ProcessGroup, logdir: Path, script: str, args: list[str],
                        num_workers: int, num_servers: int = 1, deadline: float = 180) -> list[str]:
    """Scheduler + servers + workers of ``script`` on 127.0.0.1; returns the worker logs."""
    base = {"DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": str(free_port()),
            "DMLC_NUM_SERVER": str(num_servers), "DMLC_NUM_WORKER": str(num_workers),
            "DMLC_NODE_HOST": "127.0.0.1"}
    cmd = [PYTHON, str(JOBS / script), *args]
    roles = ["scheduler"] + ["server"] * num_servers + ["worker"] * num_workers
    started = [(role, processes.start(cmd, job_env(DMLC_ROLE=role, **base), logdir / f"{role}-{i}.log"))
               for i, role in enumerate(roles)]
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        codes = [proc.poll() for _, proc in started]
        if any(c not in (None, 0) for c in codes):
            break  # one rank failed: the others would wait for it forever
        if all(c == 0 for c in codes):
            break
        time.sleep(0.2)
    logs = {f"{role}-{i}": (logdir / f"{role}-{i}.log").read_text() for i, (role, _) in enumerate(started)}
    codes = [proc.poll() for _, proc in started]
    if codes != [0] * len(codes):
        tails = "\n".join(f"--- {k}\n{v[-1500:]}" for k, v in logs.items())
        pytest.fail(f"kvstore cluster did not finish cleanly (exit codes {codes}):\n{tails}")
    return [v for k, v in logs.items() if k.startswith("worker")]
