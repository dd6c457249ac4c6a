"""Progress of long work (stack events, per-host status, training steps) on stderr.

Three looks, chosen once per command: RICH (a live table in a terminal: one row per subject with
its latest status, colour by outcome, elapsed time in the title), PLAIN (one line per update, for
pipes and logs) and JSON (one JSON object per update, for `--json` callers that parse stderr too).
Results go to stdout; progress never does, so `dlcfn status --json | jq` stays clean.
"""

from __future__ import annotations

import enum
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, Any


class Look(enum.Enum):
    RICH = "rich"
    PLAIN = "plain"
    JSON = "json"


def choose_look(stream: IO[str], *, json_output: bool, environ: dict[str, str] | None = None) -> Look:
    env = os.environ if environ is None else environ
    if json_output:
        return Look.JSON
    if env.get("TERM") == "dumb" or "NO_COLOR" in env or not _isatty(stream):
        return Look.PLAIN
    return Look.RICH


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True)
class Update:
    """One thing that happened to one subject (a stack resource, a host, a rank)."""

    subject: str  # logical id, host name, ...
    kind: str  # resource type, role, ...
    status: str
    detail: str = ""


def tone(status: str) -> str:
    """failed / done / working / info: how a status reads, whatever produced it."""
    s = status.upper()
    if "FAIL" in s or "ROLLBACK" in s or "ERROR" in s:
        return "failed"
    if s.endswith("COMPLETE") or s in ("DONE", "OK", "RUNNING", "READY"):
        return "done"
    if "PROGRESS" in s or s in ("PENDING", "STARTING", "WAITING"):
        return "working"
    return "info"


_STYLE = {"failed": "bold red", "done": "green", "working": "yellow", "info": "cyan"}


class Progress:
    """Context manager: `with Progress(title, look) as p: p.update(Update(...)); p.note("...")`."""

    def __init__(self, title: str, look: Look, stream: IO[str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.title = title
        self.look = look
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._start = clock()
        self._rows: dict[str, tuple[Update, float]] = {}
        self._live: Any = None

    def elapsed(self) -> float:
        return self._clock() - self._start

    def __enter__(self) -> "Progress":
        self._start = self._clock()
        if self.look is Look.RICH:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream)
            self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        else:
            self._emit({"event": "start", "title": self.title}, f"{self.title}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def update(self, item: Update) -> None:
        t = self.elapsed()
        self._rows[item.subject] = (item, t)
        if self._live is not None:
            self._live.update(self._render())
            return
        line = f"{t:7.1f}s  {item.subject:<28} {item.kind:<40} {item.status}{'  ' + item.detail if item.detail else ''}"
        self._emit({"event": "update", "elapsed_s": round(t, 2), **asdict(item)}, line)

    def note(self, text: str) -> None:
        t = self.elapsed()
        if self._live is not None:
            self._live.console.print(f"[dim]{t:6.1f}s[/dim] {text}")
            return
        self._emit({"event": "note", "elapsed_s": round(t, 2), "text": text}, f"{t:7.1f}s  {text}")

    def _emit(self, record: dict[str, Any], line: str) -> None:
        text = json.dumps(record, sort_keys=True) if self.look is Look.JSON else line
        self.stream.write(text + "\n")
        self.stream.flush()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.title}  [dim]{self.elapsed():.0f}s[/dim]", title_justify="left", expand=False)
        for column in ("resource", "type", "status", "elapsed", "reason"):
            table.add_column(column, overflow="fold")
        for item, t in self._rows.values():
            style = _STYLE[tone(item.status)]
            table.add_row(item.subject, item.kind, f"[{style}]{item.status}[/{style}]", f"{t:.0f}s", item.detail)
        return table
