"""The one exception hierarchy of dlcfn, and the exit codes the CLI maps it to.

Every user-facing failure is a DlcfnError whose message is one line that names the field or
resource and says what to do next. The CLI prints it without a traceback (unless --debug).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # the operation ran and failed (stack rolled back, a rank died, ...)
    BAD_INPUT = 2  # nothing was created: the input was wrong
    INTERRUPTED = 130  # Ctrl-C; everything started was stopped


class DlcfnError(Exception):
    """A failure to report to the user as one line (plus optional detail lines)."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, detail: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # extra lines (e.g. a rank's last log lines), printed under the message
        self.hint = hint  # what to do next, appended to the message

    def render(self) -> str:
        line = self.message if not self.hint else f"{self.message}; {self.hint}"
        return line if not self.detail else f"{line}\n{self.detail.rstrip()}"


class UserInputError(DlcfnError):
    """Bad input detected before anything was created."""

    exit_code = ExitCode.BAD_INPUT


class Level(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    """One result of a validation rule: where (a field path such as `workers` or
    `env.OMP_NUM_THREADS`), what is wrong and what is allowed."""

    path: str
    message: str
    level: Level = Level.ERROR
    line: int | None = None  # line in the source file, when the input came from YAML
    source: str = ""  # file name, when the input came from a file

    def render(self) -> str:
        where = self.path
        if self.source:
            where = f"{self.source}:{self.line}: {self.path}" if self.line else f"{self.source}: {self.path}"
        return f"{where}: {self.message}"


class ValidationFailed(UserInputError):
    """All the error findings of a validation, reported together (one line each)."""

    def __init__(self, findings: list[Finding]) -> None:
        errors = [f for f in findings if f.level is Level.ERROR]
        self.findings = errors
        super().__init__("\n".join(f.render() for f in errors))


class Interrupted(DlcfnError):
    exit_code = ExitCode.INTERRUPTED


def raise_for_findings(findings: list[Finding]) -> list[Finding]:
    """Raise ValidationFailed when any finding is an error; return the warnings otherwise."""
    if any(f.level is Level.ERROR for f in findings):
        raise ValidationFailed(findings)
    return [f for f in findings if f.level is Level.WARNING]
