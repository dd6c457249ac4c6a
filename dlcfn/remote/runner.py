"""The CommandRunner seam: what the job runner needs from a host, independent of transport.

`run` executes a shell command and waits; `start` executes one and returns at once with a handle
whose output is read as it comes (the ranks of a job); `put`/`get` move files. The environment is
passed inside the command (`export K=V; cmd`) because sshd drops client environment requests.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

StreamFn = Callable[[bytes], None]


@dataclass
class RunResult:
    exit_status: int  # -1 when the host went away before reporting one
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 10) -> str:
        text = (self.stdout + self.stderr).decode(errors="replace")
        return "\n".join(text.rstrip().splitlines()[-lines:])


class RemoteProcess(Protocol):
    """A started command: read its output until EOF, then its exit status."""

    def send(self, data: bytes) -> None: ...  # to the command's stdin
    def read(self) -> tuple[bytes, bytes] | None: ...  # (stdout, stderr) chunks, None at EOF of both
    def wait(self) -> int: ...  # exit status, -1 when the connection was lost
    def close(self) -> None: ...  # closing the channel is the remote watchdog's stop signal


class CommandRunner(Protocol):
    name: str

    def run(self, cmd: str, env: Mapping[str, str] | None = None, timeout: float | None = None,
            stream: StreamFn | None = None, stdin: bytes | None = None) -> RunResult: ...
    def start(self, cmd: str, env: Mapping[str, str] | None = None) -> RemoteProcess: ...
    def put(self, data: bytes, remote_path: str) -> None: ...
    def get(self, remote_path: str) -> bytes: ...
    def close(self) -> None: ...


def with_env(cmd: str, env: Mapping[str, str] | None) -> str:
    """`export K='v' ...; cmd`, every value shell-quoted, so values with spaces or $ arrive intact."""
    if not env:
        return cmd
    exports = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    return f"export {exports}; {cmd}"
