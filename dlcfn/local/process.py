"""Processes the local cluster started and must stop later, possibly from another CLI call:
liveness that treats a zombie as finished, signals that tolerate a process already gone, and
a TERM-then-KILL stop."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """True while the process exists and has not finished (a zombie has: reap it if ours)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def send(pid: int, sig: signal.Signals) -> None:
    """Signal `pid`; a process that is already gone is not an error."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def terminate(pid: int, grace_s: float) -> None:
    """SIGTERM, wait up to `grace_s` for the process to finish, then SIGKILL."""
    send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        send(pid, signal.SIGKILL)
