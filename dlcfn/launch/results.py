"""What a job leaves on the submitting machine: `results/<job-id>/` with the collected result
files (one folder per host, or `shared/`), `logs/<process>.log`, `job.json` (spec, plan,
timings, exit codes), and the summary printed at the end."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcfn.errors import DlcfnError
from dlcfn.launch.layout import JobLayout
from dlcfn.launch.watch import RankHandle
from dlcfn.remote.runner import CommandRunner
from dlcfn.remote.transfer import fetch_tree

MAX_LISTED = 16  # processes listed one per line in the summary; more are counted by outcome


@dataclass
class Collected:
    files: list[str] = field(default_factory=list)  # relative to the job's results dir
    notes: list[str] = field(default_factory=list)  # hosts that could not be read


def host_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def collect(runners: Sequence[CommandRunner], layout: JobLayout, patterns: list[str], dest: Path) -> Collected:
    """Fetch `patterns` from each host's work dir into dest/<host>/ (dest/shared/ once when the
    hosts share a file system). A host that cannot be read is noted, not fatal: the others'
    results are still worth having."""
    from dlcfn.remote.fanout import for_each

    out = Collected()
    if not patterns:
        return out
    targets = list(runners[:1]) if layout.shared_dir else list(runners)

    def one(r: CommandRunner) -> tuple[str, list[str] | str]:
        sub = "shared" if layout.shared_dir else host_dir_name(r.name)
        try:
            return sub, fetch_tree(r, layout.work, patterns, dest / sub)
        except DlcfnError as e:
            return sub, e.message

    for sub, got in for_each(targets, one):  # type: ignore[misc]
        if isinstance(got, str):
            out.notes.append(got)
        else:
            out.files += [f"{sub}/{f}" for f in got]
    return out


def write_job_json(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps(fields, indent=2, sort_keys=True, default=str))


def process_rows(ranks: Sequence[RankHandle]) -> list[dict[str, Any]]:
    return [
        {"name": r.proc.name, "role": r.proc.role.value, "rank": r.proc.rank, "host": r.host_name, "pgid": r.pgid,
         "exit": r.status, "signal": r.signal, "started_at": r.started_at, "ended_at": r.ended_at}
        for r in ranks
    ]


def print_summary(echo: Callable[[str], None], job_id: str, state: str, timings: dict[str, float],
                  ranks: Sequence[RankHandle], results_dir: Path, collected: Collected) -> None:
    total = sum(timings.values())
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    echo(f"job {job_id}: {state} in {total:.1f} s ({phases})")
    if len(ranks) <= MAX_LISTED:
        for r in ranks:
            took = f"{(r.ended_at or r.started_at) - r.started_at:.1f} s" if r.ended_at else "-"
            outcome = "running" if r.status is None else ("ok" if r.status == 0 else r.describe_exit())
            echo(f"  {r.label:<32} {outcome:<28} {took}")
    else:
        ok = sum(1 for r in ranks if r.status == 0)
        echo(f"  {ok} of {len(ranks)} processes exited 0")
    where = _relative(results_dir)
    echo(f"  results: {where}/ ({len(collected.files)} files collected), logs: {where}/logs/, record: {where}/job.json")
    for note in collected.notes:
        echo(f"  not collected: {note}")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
