"""`dlcfn logs --follow`: prints lines as the submit process appends them, stops when the job
ends, and stops with an error when the submit process died without recording an end."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dlcfn.errors import DlcfnError
from dlcfn.launch.history import JobRecord, JobState, JobStore, process_start_time
from dlcfn.launch.logs import show_logs


def running_job(tmp_path: Path, pid: int) -> tuple[JobStore, JobRecord, Path]:
    store = JobStore(tmp_path / "jobs")
    logs = tmp_path / "results" / "j1" / "logs"
    logs.mkdir(parents=True)
    (logs / "worker-0.log").write_text("step 1\n")
    record = JobRecord(job_id="j1", name="t", state=JobState.RUNNING, submitted_at=time.time(),
                       results_dir=str(tmp_path / "results" / "j1"), controller_pid=pid, controller_started=process_start_time(pid))
    store.save(record)
    return store, record, logs


def test_follow_prints_appended_lines_until_the_job_ends(tmp_path: Path) -> None:
    store, record, logs = running_job(tmp_path, os.getpid())  # this process stands in for `dlcfn submit`
    seen: list[str] = []

    def submit_side() -> None:
        time.sleep(0.1)
        with open(logs / "worker-0.log", "a") as f:
            f.write("step 2\nstep ")  # half a line: printed only once it is whole
            f.flush()
            time.sleep(0.1)
            f.write("3\n")
        (logs / "server-0.log").write_text("serving\n")  # a process that appears later
        time.sleep(0.1)
        with open(logs / "worker-0.log", "a") as f:
            f.write("done")  # the last line, without its newline
        record.state = JobState.SUCCEEDED
        store.save(record)

    writer = threading.Thread(target=submit_side)
    writer.start()
    show_logs(store, "j1", None, True, seen.append, poll_s=0.02)
    writer.join()
    assert [s for s in seen if s.startswith("[worker-0]")] == ["[worker-0] step 1", "[worker-0] step 2", "[worker-0] step 3", "[worker-0] done"]
    assert "[server-0] serving" in seen


def test_follow_stops_when_the_submit_process_is_gone(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    pid = gone.pid
    started = process_start_time(pid)
    gone.wait()
    store, record, logs = running_job(tmp_path, os.getpid())
    record.controller_pid, record.controller_started = pid, started or "1"
    store.save(record)
    seen: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(DlcfnError, match=f"job j1: its submit process \\({pid}\\) is gone"):
        show_logs(store, "j1", "worker-0", True, seen.append, poll_s=0.02)
    assert seen == ["step 1"] and time.monotonic() - t0 < 5
