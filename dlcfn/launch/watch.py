"""Watching the ranks of a job: one reader per rank turns its channel into prefixed lines (for
the console), a per-process log file, a tail for the failure message, and finally an exit event.
All events go through one queue so that the submitting thread decides, in order, what to print
and when to fail."""

from __future__ import annotations

import collections
import enum
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlcfn.launch import layout
from dlcfn.launch.plan import Process
from dlcfn.remote.runner import RemoteProcess

TAIL_LINES = 10
PGID_MARK = b"dlcfn-watchdog pgid="
SIGNAL_MARK = b"dlcfn-watchdog signal="
PREPARED_MARK = layout.PREPARED_MARK.encode() + b" "  # JobLayout.prepare's report, from a host's first rank session


class EventKind(enum.Enum):
    LINE = "line"
    EXIT = "exit"


@dataclass
class Event:
    kind: EventKind
    rank: "RankHandle"
    text: str = ""


@dataclass
class RankHandle:
    """One running process of the job, as the controller sees it."""

    proc: Process
    host_name: str
    remote: RemoteProcess
    log_path: Path
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    pgid: int | None = None
    status: int | None = None  # exit status; -1 when the host/link went away
    signal: int | None = None  # set when a signal ended the rank (status is 128 + signal)
    stopped: bool = False  # still running when dlcfn stopped the job
    prepared: str | None = None  # what JobLayout.prepare reported, when this session ran it
    settled: threading.Event = field(default_factory=threading.Event)  # prepared reported, or the session ended
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))

    @property
    def label(self) -> str:
        return f"{self.proc.name}@{self.host_name}"

    @property
    def done(self) -> bool:
        return self.status is not None

    def describe_exit(self) -> str:
        if self.stopped and self.status != 0:
            how = signal.Signals(self.signal).name if self.signal else f"exit {self.status}"
            return f"stopped by dlcfn ({how})"
        if self.status == -1:
            return "lost its host (SSH connection closed: host unreachable or its sshd died)"
        if self.signal:
            return f"was killed by signal {signal.Signals(self.signal).name} (exit {self.status})"
        return f"exited with code {self.status}"


def watch(rank: RankHandle, events: "queue.Queue[Event]") -> threading.Thread:
    """Start the reader thread of one rank; it posts LINE events and one final EXIT event."""
    t = threading.Thread(target=_read_rank, args=(rank, events), name=f"watch-{rank.proc.name}", daemon=True)
    t.start()
    return t


def _read_rank(rank: RankHandle, events: "queue.Queue[Event]") -> None:
    err = threading.Thread(target=_read_stderr, args=(rank, events), daemon=True)
    err.start()
    with open(rank.log_path, "ab") as log:
        pending = b""
        while chunk := rank.remote.read_stdout():
            log.write(chunk)
            log.flush()
            pending = _post_lines(rank, events, pending + chunk)
        if pending:
            _post_lines(rank, events, pending + b"\n")
    status = rank.remote.wait()
    err.join(timeout=2)
    rank.ended_at = time.time()
    rank.status = status
    rank.settled.set()
    events.put(Event(EventKind.EXIT, rank))


def _read_stderr(rank: RankHandle, events: "queue.Queue[Event]") -> None:
    """The watchdog's reports (pgid, signal); anything else here is the remote shell's own
    complaint (python not found, cd failed): treat it as output."""
    pending = b""
    while chunk := rank.remote.read_stderr():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(PGID_MARK):
                rank.pgid = int(line[len(PGID_MARK):])
            elif line.startswith(SIGNAL_MARK):
                rank.signal = int(line[len(SIGNAL_MARK):])
            elif line.startswith(PREPARED_MARK) and rank.prepared is None:
                rank.prepared = line[len(PREPARED_MARK):].decode(errors="replace")
                rank.settled.set()
            else:
                with open(rank.log_path, "ab") as log:
                    log.write(line + b"\n")
                _post_lines(rank, events, line + b"\n")


def _post_lines(rank: RankHandle, events: "queue.Queue[Event]", data: bytes) -> bytes:
    *lines, rest = data.split(b"\n")
    for raw in lines:
        text = raw.decode(errors="replace").rstrip("\r")
        rank.tail.append(text)
        events.put(Event(EventKind.LINE, rank, text))
    return rest
