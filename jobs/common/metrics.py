"""The machine-readable record a training job leaves behind: ``<output>/rank-<r>/metrics.json``.

One directory per worker rank so ranks never overwrite each other, whether their hosts
share a file system (EFS, the local cluster) or not. The file is rewritten atomically
after every epoch, so a job that dies still leaves the epochs it finished.

Format (``schema`` 1)::

    {"schema": 1, "job": "lstm_bucketing", "rank": 0, "num_workers": 2,
     "kvstore": "dist_sync", "config": {...the command-line flags...},
     "data": {...job-specific facts about the data: sizes, buckets, pad fraction...},
     "epochs": [{"epoch": 1, ...job-specific numbers...}, ...],
     "final": {...numbers at the end: best/final validation, stop reason...}}
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def rank_dir(output: str | Path, rank: int) -> Path:
    """Where rank ``rank`` writes metrics, checkpoints and final parameters."""
    return Path(output) / f"rank-{rank}"


@dataclass
class MetricsWriter:
    """Accumulates one worker's metrics and keeps ``metrics.json`` current on disk."""

    directory: Path
    job: str
    rank: int
    num_workers: int
    kvstore: str
    config: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.directory / "metrics.json"

    def keep_history(self, before_epoch: int) -> None:
        """On resume: keep the epochs already on disk that come before ``before_epoch``.
        Call before the first ``write`` of the resumed run."""
        if self.path.exists():
            old = read_metrics(self.path)["epochs"]
            self.epochs = [e for e in old if e["epoch"] < before_epoch]

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.epochs.append(record)
        self.write()
        # One line per epoch on stdout: the runner streams it prefixed with host and role.
        shown = " ".join(f"{k}={_short(v)}" for k, v in record.items())
        print(f"[rank {self.rank}] {shown}", flush=True)

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        doc = {
            "schema": SCHEMA_VERSION, "job": self.job, "rank": self.rank,
            "num_workers": self.num_workers, "kvstore": self.kvstore, "config": self.config,
            "data": self.data, "epochs": self.epochs, "final": self.final,
        }
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        os.replace(tmp, self.path)  # readers never see half a file


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def read_metrics(path: str | Path) -> dict[str, Any]:
    """Load a metrics file (for tests, the demo's table and plots)."""
    return json.loads(Path(path).read_text())
