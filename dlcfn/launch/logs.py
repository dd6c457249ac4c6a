"""`dlcfn logs`: the per-process log files the submit process writes under results/<job-id>/logs/,
all prefixed (or one process raw), optionally followed until the job ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dlcfn.errors import UserInputError
from dlcfn.launch.history import JobStore
from dlcfn.spec.schema import did_you_mean


def show_logs(store: JobStore, job_id: str, process: str | None, follow: bool, echo: Callable[[str], None]) -> None:
    record = store.load(job_id)
    logs_dir = Path(record.results_dir) / "logs"
    if not logs_dir.is_dir():
        raise UserInputError(f"job {job_id}: no logs at {logs_dir} (the results directory was moved or deleted)")
    files = sorted(logs_dir.glob("*.log"))
    names = [f.stem for f in files]
    if process is not None:
        if process not in names:
            raise UserInputError(f"job {job_id} has no process {process!r}{did_you_mean(process, names)}; processes: {', '.join(names)}")
        files = [logs_dir / f"{process}.log"]
    offsets = {f: 0 for f in files}
    while True:
        finished = store.load(job_id).state.finished
        for f in sorted(logs_dir.glob("*.log")) if process is None else files:
            offsets.setdefault(f, 0)
            data = f.read_bytes()[offsets[f]:]
            complete = data[: data.rfind(b"\n") + 1]
            offsets[f] += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                echo(line if process else f"[{f.stem}] {line}")
        if not follow or finished:
            return
        time.sleep(0.2)
