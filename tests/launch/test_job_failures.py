"""Failure injection against real sshd hosts. Every case must end with a non-zero exit, one line
naming the process, host and cause, and no process of the job left on any host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

HANG = {"num_workers": 2, "num_servers": 1, "timeout": 60, "env": {"TEST_MODE": "hang"}}


def ranks_of(job_pids: Callable[[str], list[int]], job_id: str) -> dict[str, int]:
    """process name -> pid of the rank itself (`python train.py`, not its watchdog `python -I -S -c`)."""
    out = {}
    for pid in job_pids(job_id):
        try:
            env = dict(kv.split(b"=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in kv)
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[1:2] == [b"train.py"]:
                out[env[b"DLCFN_PROCESS"].decode()] = pid
        except (OSError, KeyError):
            continue
    return out


def wait_for(cond: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("dlcfn: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_worker_exits_3(ssh_pool_factory, write_job, run_submit, job_pids, in_tmp_cwd: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    job = write_job(**{**HANG, "env": {"TEST_MODE": "exit3"}})
    out = run_submit(pool, job, "--job-id", "exit3")
    assert out.returncode == 1, out.stderr
    host2 = pool.hosts[1].spec.split("@")[1]
    assert f"worker-1 on host {host2} exited with code 3; stopped every other process" in error_line(out.stderr)
    assert "  | step 11 loss 0.083" in out.stderr  # the last log lines come with the message
    assert "step 1 loss" not in out.stderr.split("dlcfn: error:")[1]  # ... only the last 10
    assert not job_pids("exit3")
    assert not any((h.root / ".dlcfn" / "jobs" / "exit3").exists() for h in pool.hosts)  # failed jobs clean up too
    record = json.loads((in_tmp_cwd / "results" / "exit3" / "job.json").read_text())
    assert record["state"] == "failed"
    assert {p["name"]: p["exit"] for p in record["processes"]}["worker-1"] == 3


def test_worker_sigkilled(ssh_pool_factory, write_job, start_submit, job_pids) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    proc = start_submit(pool, write_job(**HANG), "--job-id", "sigkill")
    wait_for(lambda: len(ranks_of(job_pids, "sigkill")) == 4, "4 ranks")
    os.kill(ranks_of(job_pids, "sigkill")["worker-1"], signal.SIGKILL)
    rc, _, err = finish(proc)
    assert rc == 1
    assert "worker-1 on host" in error_line(err) and "was killed by signal SIGKILL (exit 137)" in error_line(err)
    assert not job_pids("sigkill")


def test_host_sshd_killed(ssh_pool_factory, write_job, start_submit, job_pids) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    proc = start_submit(pool, write_job(**HANG), "--job-id", "sshdkill")
    wait_for(lambda: len(ranks_of(job_pids, "sshdkill")) == 4, "4 ranks")
    pool.kill_host(pool.hosts[2])  # runs server-0: its channel dies, its watchdog must kill it
    rc, _, err = finish(proc)
    assert rc == 1
    host3 = pool.hosts[2].spec.split("@")[1]
    assert f"server-0 on host {host3} lost its host" in error_line(err)
    wait_for(lambda: not job_pids("sshdkill"), "no process of the job left", timeout=10)


def test_ctrl_c(ssh_pool_factory, write_job, start_submit, job_pids, dlcfn_home: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    proc = start_submit(pool, write_job(**HANG), "--job-id", "ctrlc")
    wait_for(lambda: len(ranks_of(job_pids, "ctrlc")) == 4, "4 ranks")
    proc.send_signal(signal.SIGINT)
    rc, _, err = finish(proc)
    assert rc == 130
    assert "job ctrlc interrupted (Ctrl-C)" in error_line(err)
    assert not job_pids("ctrlc")
    assert json.loads((dlcfn_home / "jobs" / "ctrlc.json").read_text())["state"] == "interrupted"


def test_timeout(ssh_pool_factory, write_job, run_submit, job_pids) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    out = run_submit(pool, write_job(**{**HANG, "timeout": 2}), "--job-id", "tmo")
    assert out.returncode == 1
    assert "job tmo timed out after 2 s" in error_line(out.stderr)
    assert not job_pids("tmo")


def test_cancel_from_another_process(ssh_pool_factory, write_job, start_submit, job_pids, dlcfn_home: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    proc = start_submit(pool, write_job(**HANG), "--job-id", "cxl")
    wait_for(lambda: len(ranks_of(job_pids, "cxl")) == 4, "4 ranks")
    record = dlcfn_home / "jobs" / "cxl.json"
    wait_for(lambda: len(json.loads(record.read_text())["processes"]) == 4, "process groups in the job record")
    pgids = {p["name"]: p["pgid"] for p in json.loads(record.read_text())["processes"]}
    assert pgids == ranks_of(job_pids, "cxl")  # each rank leads its own process group
    env = {**os.environ, "DLCFN_HOME": str(dlcfn_home)}
    jobs = subprocess.run([sys.executable, "-m", "dlcfn", "jobs"], capture_output=True, text=True, env=env, timeout=30)
    assert "cxl" in jobs.stdout and "running" in jobs.stdout
    out = subprocess.run([sys.executable, "-m", "dlcfn", "cancel", "cxl"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    rc, _, err = finish(proc)
    assert rc == 1 and "job cxl cancelled" in error_line(err)
    assert not job_pids("cxl")
    jobs = subprocess.run([sys.executable, "-m", "dlcfn", "jobs"], capture_output=True, text=True, env=env, timeout=30)
    assert "cancelled" in jobs.stdout
    logs = subprocess.run([sys.executable, "-m", "dlcfn", "logs", "cxl"], capture_output=True, text=True, env=env, timeout=30)
    assert "[worker-1] hello from worker-1" in logs.stdout


def test_controller_sigkilled_leaves_nothing(ssh_pool_factory, write_job, start_submit, job_pids) -> None:  # type: ignore[no-untyped-def]
    """No cleanup code runs in a SIGKILLed submit process: the ranks' lives are bound to their
    SSH channels, so the remote watchdogs stop them when the connections drop."""
    pool = ssh_pool_factory(2)
    proc = start_submit(pool, write_job(**HANG), "--job-id", "ctlkill")
    wait_for(lambda: len(ranks_of(job_pids, "ctlkill")) == 4, "4 ranks")
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not job_pids("ctlkill"), "no process of the job left", timeout=10)


def test_host_stops_answering(ssh_pool_factory, write_job, start_submit, job_pids) -> None:  # type: ignore[no-untyped-def]
    """A frozen host (its sshd stopped, TCP still up) is noticed by the SSH pings; the others are
    stopped at once; its own ranks go when the host dies for good and their channels close."""
    pool = ssh_pool_factory(3)
    proc = start_submit(pool, write_job(**HANG), "--job-id", "frozen")
    wait_for(lambda: len(ranks_of(job_pids, "frozen")) == 4, "4 ranks")
    host3 = pool.hosts[2]
    frozen = pool.freeze_host(host3)
    try:
        rc, _, err = finish(proc)
    finally:
        pool.thaw_host(frozen)
    assert rc == 1
    assert f"host {host3.spec.split('@')[1]} stopped answering (no SSH reply for 6 s)" in error_line(err)
    assert set(ranks_of(job_pids, "frozen")) <= {"server-0"}  # only the frozen host's rank may be left...
    pool.kill_host(host3)
    wait_for(lambda: not job_pids("frozen"), "no process of the job left", timeout=10)  # ...until its channel closes



def test_prepare_fails_on_one_host(ssh_pool_factory, write_job, run_submit, job_pids) -> None:  # type: ignore[no-untyped-def]
    """The job dir cannot be made on host 2 (a file sits where its directory goes): the error
    names the host and why, and the ranks already opened on the other hosts never start."""
    pool = ssh_pool_factory(3)
    (pool.hosts[1].root / ".dlcfn").mkdir(parents=True, exist_ok=True)
    (pool.hosts[1].root / ".dlcfn" / "jobs").write_text("not a directory")
    out = run_submit(pool, write_job(num_workers=2, num_servers=1), "--job-id", "noprep")
    assert out.returncode == 1, out.stderr
    host2 = pool.hosts[1].spec.split("@")[1]
    assert f"host {host2}: preparing the job dir failed (exit 98)" in error_line(out.stderr)
    assert "Not a directory" in out.stderr  # the remote shell's own words come with it
    assert "hello from" not in out.stdout  # no rank started anywhere
    assert not job_pids("noprep")


def test_setup_runs_before_the_ranks_and_its_failure_stops_the_job(ssh_pool_factory, write_job, run_submit, job_pids,
                                                                   in_tmp_cwd: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    ok = run_submit(pool, write_job(num_workers=2, num_servers=1, setup=["echo prepared > marker.txt", "cat train.py | wc -l"],
                                    results=["marker.txt"]), "--job-id", "setup-ok")
    assert ok.returncode == 0, ok.stderr
    hosts = [h.spec.split("@")[1] for h in pool.hosts]
    for h in hosts:  # both commands ran on each host, in the shipped workdir, prefixed
        assert any(line.startswith(f"[setup@{h}] ") and line.split()[-1].isdigit() for line in ok.stdout.splitlines()), ok.stdout
    markers = sorted((in_tmp_cwd / "results" / "setup-ok").glob("*/marker.txt"))
    assert [m.read_text() for m in markers] == ["prepared\n"] * 2  # written by setup, collected from each host

    bad = run_submit(pool, write_job(num_workers=2, num_servers=1, setup=["exit 4"]), "--job-id", "setup-bad")
    assert bad.returncode == 1
    assert f"setup command 'exit 4' failed on host" in error_line(bad.stderr) and "with exit 4" in error_line(bad.stderr)
    assert "hello from" not in bad.stdout
    assert not job_pids("setup-bad")
