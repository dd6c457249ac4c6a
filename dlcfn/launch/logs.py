"""`dlcfn logs`: the per-process log files the submit process writes under results/<job-id>/logs/,
all prefixed (or one process raw), optionally followed until the job ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from dlcfn.errors import DlcfnError, UserInputError
from dlcfn.launch.history import JobStore
from dlcfn.spec.schema import did_you_mean


def show_logs(store: JobStore, job_id: str, process: str | None, follow: bool, echo: Callable[[str], None],
              poll_s: float = 0.2) -> None:
    """Print the logs; with `follow`, keep printing new lines until the job ends. Each pass reads
    only what was appended since the last one. A job whose submit process died without recording
    an end ("lost" in `dlcfn jobs`) would never end: following it stops with an error."""
    from dlcfn.launch.cancel import controller_alive

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
    offsets: dict[Path, int] = {}
    while True:
        record = store.load(job_id)
        lost = follow and not record.state.finished and not controller_alive(record)
        last = not follow or record.state.finished or lost  # then a last line without its newline is printed too
        for f in sorted(logs_dir.glob("*.log")) if process is None else files:
            for line in _new_lines(f, offsets, last):
                echo(line if process else f"[{f.stem}] {line}")
        if lost:
            raise DlcfnError(f"job {job_id}: its submit process ({record.controller_pid}) is gone without recording an end; "
                             "stopped following (`dlcfn jobs` lists it as lost)")
        if last:
            return
        time.sleep(poll_s)


def _new_lines(path: Path, offsets: dict[Path, int], partial: bool) -> list[str]:
    """The whole lines appended to `path` since offsets[path] (and a trailing partial one when
    `partial`); advances the offset past what it returns."""
    start = offsets.get(path, 0)
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return []
    taken = data if partial else data[: data.rfind(b"\n") + 1]
    offsets[path] = start + len(taken)
    return taken.decode(errors="replace").splitlines()
