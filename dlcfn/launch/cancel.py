"""Stopping a running job from another process (`dlcfn cancel`): signal its `submit` process,
which stops every rank and records the job as cancelled; then, as a safety net (the submit
process may be gone), kill whatever rank is still registered on each host."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from dlcfn.errors import DlcfnError, UserInputError
from dlcfn.launch.history import JobRecord, JobState, JobStore, process_start_time
from dlcfn.launch.layout import JobLayout
from dlcfn.remote.hosts import SshTarget

CONTROLLER_WAIT = 15.0  # seconds for the submit process to stop its ranks and exit
GRACE = 2.0


def controller_alive(record: JobRecord) -> bool:
    """True when the recorded submit process is still that process (not a recycled pid)."""
    started = process_start_time(record.controller_pid)
    return bool(started) and started == record.controller_started


def cancel_job(store: JobStore, job_id: str, echo: Callable[[str], None]) -> JobRecord:
    record = store.load(job_id)
    if record.state.finished:
        raise UserInputError(f"job {job_id} already ended ({record.state.value}); nothing to cancel")
    if controller_alive(record):
        os.kill(record.controller_pid, signal.SIGTERM)
        deadline = time.monotonic() + CONTROLLER_WAIT
        while controller_alive(record) and not store.load(job_id).state.finished and time.monotonic() < deadline:
            time.sleep(0.05)
        echo(f"job {job_id}: submit process {record.controller_pid} stopped its processes")
    leftovers = kill_remote(record)
    record = store.load(job_id)
    if not record.state.finished:  # the submit process was gone: record the end ourselves
        record.state, record.ended_at, record.message = JobState.CANCELLED, time.time(), f"job {job_id} cancelled (dlcfn cancel)"
        store.save(record)
    for note in leftovers:
        echo(f"  note: {note}")
    echo(f"job {job_id}: {record.state.value}")
    return record


def kill_remote(record: JobRecord) -> list[str]:
    """Run the kill script on every host of the job; return notes for hosts it could not reach."""
    from dlcfn.remote.fanout import close_all, connect_all, for_each

    targets = [SshTarget.from_dict(h) for h in record.hosts]
    layout = JobLayout(record.job_id, record.shared_dir)
    notes: list[str] = []
    try:
        runners = connect_all(targets)
    except DlcfnError as e:
        return [f"{e.message}; processes there stop when their SSH channel closes"]
    try:
        def one(r):  # type: ignore[no-untyped-def]
            res = r.run(layout.kill(GRACE), timeout=GRACE + 10)
            if not res.ok:
                notes.append(f"host {r.name}: some processes did not stop")

        for_each(runners, one)
    finally:
        close_all(runners)
    return notes
