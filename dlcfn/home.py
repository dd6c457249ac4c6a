"""Where dlcfn keeps its local state: `$DLCFN_HOME` (default `~/.dlcfn`).

  clusters/<name>/state.json   the cluster's inventory (see dlcfn.inventory)
  clusters/<name>/...          keys, known_hosts, and for local clusters the moto state and hosts
  jobs/<job-id>.json           job history records (state, duration, where its results are)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Home":
        env = os.environ if environ is None else environ
        root = env.get("DLCFN_HOME") or str(Path.home() / ".dlcfn")
        return cls(Path(root))

    @property
    def clusters_dir(self) -> Path:
        return self.root / "clusters"

    def cluster_dir(self, name: str) -> Path:
        return self.clusters_dir / name

    def state_file(self, name: str) -> Path:
        return self.cluster_dir(name) / "state.json"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never half:
    a temp file per writing process (two CLI calls may write at once), then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
