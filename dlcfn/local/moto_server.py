"""The embedded AWS of a local cluster: a moto server on 127.0.0.1 that outlives each CLI call.

`dlcfn create-stack --local` starts it, every later command (status, submit, update, delete)
talks to it through `endpoint_url`, and `delete-stack` stops it. It runs detached in its own
session, on an ephemeral port it announces through a ready file in the cluster's directory
(written atomically, so a reader sees either nothing or the whole record).

Run as `python -m dlcfn.local.moto_server READY_FILE` (that is what `start` does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dlcfn.errors import DlcfnError
from dlcfn.home import write_atomic
from dlcfn.local.process import terminate

READY_FILE = "moto.json"
LOG_FILE = "moto.log"
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class MotoEndpoint:
    url: str
    pid: int


def start(state_dir: Path, timeout: float = START_TIMEOUT_S) -> MotoEndpoint:
    """Start a detached moto server whose record lives in `state_dir`; return its endpoint."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ready = state_dir / READY_FILE
    ready.unlink(missing_ok=True)
    with open(state_dir / LOG_FILE, "ab") as log:
        # Own session: Ctrl-C in the terminal that ran create-stack must not kill the cluster's AWS.
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlcfn.local.moto_server", str(ready)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoint = read(state_dir)
        if endpoint is not None:
            return endpoint
        if proc.poll() is not None:
            raise DlcfnError(f"the local moto server exited with code {proc.returncode} at start; see {state_dir / LOG_FILE}")
        time.sleep(0.05)
    terminate(proc.pid, STOP_GRACE_S)
    raise DlcfnError(f"the local moto server did not start within {timeout:.0f} s; see {state_dir / LOG_FILE}")


def read(state_dir: Path) -> MotoEndpoint | None:
    """The running server's endpoint, or None when there is none (never started, or gone)."""
    try:
        raw = json.loads((state_dir / READY_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    endpoint = MotoEndpoint(url=raw["url"], pid=int(raw["pid"]))
    return endpoint if _is_ours(endpoint.pid, state_dir / READY_FILE) else None


def stop(state_dir: Path) -> bool:
    """Stop the server recorded in `state_dir`; True when one was running. Safe to call twice."""
    endpoint = read(state_dir)
    if endpoint is None:
        (state_dir / READY_FILE).unlink(missing_ok=True)
        return False
    return stop_recorded(state_dir, endpoint)


def stop_recorded(state_dir: Path, endpoint: MotoEndpoint) -> bool:
    """Stop a server read earlier from `state_dir`, also once its ready file is gone (deleted with
    the cluster's directory); True when it was still running."""
    (state_dir / READY_FILE).unlink(missing_ok=True)
    if not _is_ours(endpoint.pid, state_dir / READY_FILE):
        return False
    terminate(endpoint.pid, STOP_GRACE_S)
    return True


def _is_ours(pid: int, ready: Path) -> bool:
    """Guard against pid reuse: the process must be this module serving this ready file."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"dlcfn.local.moto_server" in cmdline and str(ready).encode() in cmdline


def _serve(ready: Path) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    write_atomic(ready, json.dumps({"url": f"http://{host}:{port}", "pid": os.getpid()}))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # delivered via sigwait
    _serve(Path(sys.argv[1]))
