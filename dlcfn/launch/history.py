"""Job history: one JSON record per job under `Home.jobs_dir`, read by `dlcfn jobs`, `logs` and
`cancel`. The submitting process writes it when the job starts, when its ranks are up (with
their process groups) and when it ends."""

from __future__ import annotations

import enum
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcfn.errors import UserInputError
from dlcfn.home import write_atomic
from dlcfn.spec.schema import did_you_mean


class JobState(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed-out"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self is not JobState.RUNNING


@dataclass
class JobRecord:
    job_id: str
    name: str
    state: JobState
    submitted_at: float
    results_dir: str  # absolute
    controller_pid: int  # the `dlcfn submit` process, signalled by `dlcfn cancel`
    controller_started: str = ""  # its /proc start time, so a recycled pid is never signalled
    ended_at: float | None = None
    message: str = ""
    shared_dir: str = ""
    hosts: list[dict[str, object]] = field(default_factory=list)  # SshTarget dicts, for cancel
    processes: list[dict[str, object]] = field(default_factory=list)  # name, host, pgid, exit

    @property
    def duration(self) -> float:
        return (self.ended_at or time.time()) - self.submitted_at

    def to_json(self) -> str:
        d = asdict(self)
        d["state"] = self.state.value
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "JobRecord":
        d = json.loads(text)
        d["state"] = JobState(d["state"])
        return cls(**d)


@dataclass(frozen=True)
class JobStore:
    root: Path  # Home.jobs_dir

    def path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.json"

    def save(self, record: JobRecord) -> None:
        write_atomic(self.path(record.job_id), record.to_json())  # readers never see half a record

    def exists(self, job_id: str) -> bool:
        return self.path(job_id).exists()

    def load(self, job_id: str) -> JobRecord:
        try:
            return JobRecord.from_json(self.path(job_id).read_text())
        except FileNotFoundError as e:
            known = [r.job_id for r in self.all()]
            raise UserInputError(f"no job {job_id!r}{did_you_mean(job_id, known)}; see `dlcfn jobs`") from e

    def all(self) -> list[JobRecord]:
        if not self.root.is_dir():
            return []
        records = [JobRecord.from_json(p.read_text()) for p in self.root.glob("*.json")]
        return sorted(records, key=lambda r: r.submitted_at)


def process_start_time(pid: int) -> str:
    """/proc start time of `pid` (clock ticks since boot), '' when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return ""
    return "" if fields[0] in ("Z", "X") else fields[19]
