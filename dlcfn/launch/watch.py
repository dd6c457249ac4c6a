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
from typing import BinaryIO
from pathlib import Path

from dlcfn.launch import layout
from dlcfn.launch.plan import Process
from dlcfn.remote.runner import RemoteProcess

TAIL_LINES = 10
PGID_MARK = b"dlcfn-watchdog pgid="
SIGNAL_MARK = b"dlcfn-watchdog signal="
PREPARED_MARK = layout.PREPARED_MARK.encode() + b" "  # the prepare step's report, from a host's first rank session


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
    prepared: str | None = None  # what the prepare step reported, when this session ran it
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
    """One thread per rank: both streams (stdout: the rank's output; stderr: the supervisor's
    reports and the remote shell's own complaints), then the exit status."""
    pending_out = pending_err = b""
    with open(rank.log_path, "ab") as log:
        while (chunk := rank.remote.read()) is not None:
            out, err = chunk
            if out:
                log.write(out)
                log.flush()
                pending_out = _post_lines(rank, events, pending_out + out)
            if err:
                pending_err = _stderr_lines(rank, events, log, pending_err + err)
        if pending_out:
            _post_lines(rank, events, pending_out + b"\n")
        if pending_err:
            _stderr_lines(rank, events, log, pending_err + b"\n")
    status = rank.remote.wait()
    rank.ended_at = time.time()
    rank.status = status
    rank.settled.set()
    events.put(Event(EventKind.EXIT, rank))


def _stderr_lines(rank: RankHandle, events: "queue.Queue[Event]", log: BinaryIO, data: bytes) -> bytes:
    """The supervisor's reports (pgid, signal, prepared); any other line is the remote shell's
    own complaint (python not found, cd failed): treat it as output. Returns the unfinished line."""
    *lines, rest = data.split(b"\n")
    for line in lines:
        if line.startswith(PGID_MARK):
            rank.pgid = int(line[len(PGID_MARK):])
        elif line.startswith(SIGNAL_MARK):
            rank.signal = int(line[len(SIGNAL_MARK):])
        elif line.startswith(PREPARED_MARK) and rank.prepared is None:
            rank.prepared = line[len(PREPARED_MARK):].decode(errors="replace")
            rank.settled.set()
        else:
            log.write(line + b"\n")
            log.flush()
            _post_lines(rank, events, line + b"\n")
    return rest


def _post_lines(rank: RankHandle, events: "queue.Queue[Event]", data: bytes) -> bytes:
    *lines, rest = data.split(b"\n")
    for raw in lines:
        text = raw.decode(errors="replace").rstrip("\r")
        rank.tail.append(text)
        events.put(Event(EventKind.LINE, rank, text))
    return rest
