"""Ctrl-C during `create-stack --local`, at each stage (control plane up, hosts starting, nodes
booting): exit 130, and no sshd, moto server or cluster directory is left; delete is then a no-op."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from test_local_cluster import _env, _processes_mentioning, home  # noqa: F401 (fixture)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["local control plane", "starting 3 local sshd host", "ASG monitor"])
def test_interrupted_create_leaves_nothing(home: Path, stage: str) -> None:  # noqa: F811
    proc = subprocess.Popen([sys.executable, "-m", "dlcfn", "create-stack", "int", "--local", "--workers", "2"], env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a shell's background job ignores it
    try:
        seen = []
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if stage in line:
                proc.send_signal(signal.SIGINT)  # as the terminal's Ctrl-C would
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not _processes_mentioning(str(home))
    assert not (home / "clusters" / "int").exists()
    again = subprocess.run([sys.executable, "-m", "dlcfn", "delete-stack", "int", "--local", "--yes"], env=_env(home), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "does not exist" in again.stdout
