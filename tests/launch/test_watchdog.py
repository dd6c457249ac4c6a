"""The rank supervisor's contract, for both implementations (watchdog.pl, the default, and
watchdog.py, for hosts without perl), run exactly as the rank command runs them but through
local pipes instead of an SSH channel: stdin is the channel, its EOF the stop signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcfn.launch.layout import perl_watchdog_source, watchdog_source

SUPERVISORS = {
    "perl": lambda: ["perl", "-e", perl_watchdog_source()],
    "python": lambda: [sys.executable, "-I", "-S", "-c", watchdog_source()],
}


@pytest.fixture(params=sorted(SUPERVISORS))
def supervise(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start a supervisor over argv; returns (Popen, ctl dir). Everything is killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, grace: float = 2.0) -> subprocess.Popen[bytes]:
        cmd = [*SUPERVISORS[request.param](), str(tmp_path), "rank-0", f"{grace:g}", *argv]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def pgid_of(p: subprocess.Popen[bytes]) -> int:
    assert p.stderr is not None
    line = p.stderr.readline()
    assert line.startswith(b"dlcfn-watchdog pgid="), line
    return int(line.split(b"=")[1])


def group_gone(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def pid_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return False  # a zombie nobody reaps would count as still running
        time.sleep(0.01)
    return False


def test_exit_code_and_output_pass_through(supervise, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "echo out; echo err >&2; exit 3")
    pgid_of(p)
    assert p.wait(timeout=10) == 3  # stdin still open: the rank ended by itself
    out, err = p.communicate(timeout=10)
    assert out == b"out\nerr\n"  # the rank's stderr goes to stdout; stderr is the supervisor's
    assert b"signal=" not in err
    assert not (tmp_path / "rank-0.pgid").exists()


def test_rank_in_own_session(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "ps -o pid=,pgid=,sid= -p $$; read x")
    pgid = pgid_of(p)
    assert p.stdout is not None
    pid, pg, sid = (int(w) for w in p.stdout.readline().split())
    assert pid == pg == sid == pgid
    p.stdin.close()  # type: ignore[union-attr]
    p.wait(timeout=10)


def test_signal_reported(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "kill -KILL $$")
    pgid_of(p)
    assert p.wait(timeout=10) == 128 + signal.SIGKILL
    _, err = p.communicate(timeout=10)
    assert b"dlcfn-watchdog signal=9" in err


def test_stdin_eof_kills_the_whole_group(supervise, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "sleep 300 & sleep 300 & echo started; wait")
    pgid = pgid_of(p)
    assert (tmp_path / "rank-0.pgid").read_text() == str(pgid)  # for `dlcfn cancel`
    assert p.stdout is not None and p.stdout.readline() == b"started\n"
    t0 = time.monotonic()
    p.stdin.close()  # type: ignore[union-attr]  # the channel is gone
    p.wait(timeout=10)
    assert time.monotonic() - t0 < 1.0
    assert group_gone(pgid, timeout=1)
    assert p.returncode == 128 + signal.SIGTERM
    assert not (tmp_path / "rank-0.pgid").exists()


def test_stragglers_killed_when_rank_exits(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "sleep 300 & echo $!; exit 0")
    pgid = pgid_of(p)
    assert p.stdout is not None
    straggler = int(p.stdout.readline())
    assert p.wait(timeout=10) == 0
    assert group_gone(pgid, timeout=1)
    assert pid_gone(straggler, timeout=1)  # killed and reaped (the supervisor is its subreaper)


def test_term_ignored_then_killed_after_grace(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done", grace=0.3)
    pgid = pgid_of(p)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    t0 = time.monotonic()
    p.stdin.close()  # type: ignore[union-attr]
    assert p.wait(timeout=10) == 128 + signal.SIGKILL
    assert 0.3 <= time.monotonic() - t0 < 3.0
    assert group_gone(pgid, timeout=1)


def test_supervisor_sigterm_stops_the_rank(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "echo ready; sleep 300")
    pgid = pgid_of(p)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    assert group_gone(pgid, timeout=1)


def test_cannot_run(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("/nonexistent/train")
    assert p.wait(timeout=10) == 127
    out, err = p.communicate(timeout=10)
    assert b"cannot run /nonexistent/train" in out + err  # either way it reaches the job's log


def test_perl_source_ships_without_comments() -> None:
    src = perl_watchdog_source()
    assert not any(line.lstrip().startswith("#") for line in src.splitlines())
    assert len(src) < 4000  # it travels in every rank command
    subprocess.run(["perl", "-c", "-e", src], check=True, capture_output=True)
