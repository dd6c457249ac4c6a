"""Where a job lives on a host, and the shell commands that act on it there.

  ${DLCFN_NODE_ROOT:-$HOME}/.dlcfn/jobs/<job-id>/work   the shipped workdir; ranks run here
  ${DLCFN_NODE_ROOT:-$HOME}/.dlcfn/jobs/<job-id>/ctl    <process>.pgid of every live rank

DLCFN_NODE_ROOT is unset on real nodes; local sshd hosts set it (sshd SetEnv) so that hosts
sharing one machine keep separate job directories. With a shared file system the workdir is
shipped once to `<shared_dir>/.dlcfn/jobs/<job-id>/work` and every host runs there.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from dlcfn.launch import watchdog
from dlcfn.remote.transfer import tar_extract_flags

PREPARED_MARK = "dlcfn-prepared"
PREPARE_FAILED = 98  # exit status of a first rank session whose prepare step failed
FREE_PORT_PY = "import socket;s=socket.socket();s.bind(('',0));print(s.getsockname()[1])"


@dataclass(frozen=True)
class JobLayout:
    job_id: str  # validated: letters, digits, . _ - only, so it needs no quoting
    shared_dir: str = ""

    @property
    def job_root(self) -> str:
        """A shell word (double-quoted, expands the variables on the host)."""
        return f'"${{DLCFN_NODE_ROOT:-$HOME}}/.dlcfn/jobs/{self.job_id}"'

    @property
    def ctl(self) -> str:
        return f'"${{DLCFN_NODE_ROOT:-$HOME}}/.dlcfn/jobs/{self.job_id}/ctl"'

    @property
    def work(self) -> str:
        if self.shared_dir:
            return shlex.quote(f"{self.shared_dir}/.dlcfn/jobs/{self.job_id}/work")
        return f'"${{DLCFN_NODE_ROOT:-$HOME}}/.dlcfn/jobs/{self.job_id}/work"'

    def shell_prepare(self, step: "PrepareStep") -> str:
        """The prepare step in shell, for hosts without perl (watchdog.pl does it in-process
        otherwise): make the dirs, unpack the next `archive_size` bytes of stdin (0: nothing to
        unpack, the shared file system has it) and report on stderr, as one line for
        `parse_prepared`: the CPU count, the supervisor and, on the first host, a free port for
        the scheduler. Exit 98 when any of it fails, before anything is started."""
        parts = [f"mkdir -p {self.ctl} {self.work}"]
        if step.archive_size:
            # head -c reads exactly that many bytes: the go line that follows stays on stdin
            parts.append(f"head -c {step.archive_size} | tar {step.tar_flags} - -C {self.work}")
        words = "$(nproc) python"
        if step.probe_port:
            # The job's interpreter, or python3 when the job's is not Python (a shell script job).
            probe = f"-I -S -c {shlex.quote(FREE_PORT_PY)}"
            words += f" $({shlex.quote(step.python)} {probe} 2>/dev/null || python3 {probe})"
        return " && ".join(parts) + f' || exit {PREPARE_FAILED}; echo "{PREPARED_MARK} {words}" >&2; '

    def setup(self, command: str) -> str:
        return f"cd {self.work} && {command}"

    def rank(self, python: str, name: str, argv: list[str], grace: float, late_env: list[str], supervisor: str,
             prepare: "PrepareStep | None" = None) -> str:
        """One rank, opened early and held: the session waits for a "go" line on stdin carrying
        the values of `late_env` (known only once the hosts are prepared: the scheduler's port,
        the CPU count), so opening sessions overlaps with shipping. EOF instead of go: exit 97,
        nothing started. `prepare` (a host's first rank) runs the prepare step first.

        The supervisor is exec'd (sshd's child is the supervisor itself and the channel's stdin
        its stdin): `perl` runs watchdog.pl (~2 ms to start), which also does the prepare step
        and reads the go line itself; `python` runs watchdog.py on the host's python3 (the job's
        interpreter when there is none) with -I -S, after the shell did both; `auto` (a host's
        first rank, when it is not known yet) runs perl when the host has it, else python."""
        q = shlex.quote
        user = " ".join(q(a) for a in argv)
        prep = f"{prepare.archive_size}:{int(prepare.gzip)}:{int(prepare.probe_port)}:{int(prepare.simple)}" if prepare else "-"
        perl = f"exec perl -e {_perl_word()} {self.ctl} {q(name)} {grace:g} {self.work} {prep} {','.join(late_env) or '-'} {user}"
        if supervisor == "perl":
            return perl
        wait = f"read -r {' '.join(late_env)} || exit 97; export {' '.join(late_env)}; " if late_env else "read -r _go || exit 97; "
        python_path = (f"{self.shell_prepare(prepare) if prepare else ''}{wait}W=python3; command -v python3 >/dev/null || W={q(python)}; "
                       f"cd {self.work} && exec \"$W\" -I -S -c {q(watchdog_source())} {self.ctl} {q(name)} {grace:g} {user}")
        if supervisor == "python":
            return python_path
        return f"if command -v perl >/dev/null; then {perl}; fi; {python_path}"

    def remove(self, shared_too: bool) -> str:
        """Remove this host's job dir once the job is over and its results are home (and, on one
        host, the shared-file-system copy of the workdir): a job leaves nothing on the nodes."""
        shared = f" {shlex.quote(f'{self.shared_dir}/.dlcfn/jobs/{self.job_id}')}" if shared_too and self.shared_dir else ""
        return f"rm -rf {self.job_root}{shared}"

    def kill(self, grace: float) -> str:
        """TERM every live rank's process group on this host, KILL what is left after `grace`,
        and wait until nothing is left. Exit 0 when every group is gone."""
        polls = max(1, int(grace / 0.05))
        alive = 'alive=0; for g in "$@"; do kill -0 -- "$g" 2>/dev/null && alive=1; done; [ $alive = 0 ] && exit 0'
        return (
            f"cd {self.ctl} 2>/dev/null || exit 0; set --; "
            'for f in *.pgid; do [ -f "$f" ] && set -- "$@" "-$(cat "$f")"; done; [ $# -eq 0 ] && exit 0; '
            'kill -TERM -- "$@" 2>/dev/null; '
            f"i=0; while [ $i -lt {polls} ]; do {alive}; sleep 0.05; i=$((i+1)); done; "
            'kill -KILL -- "$@" 2>/dev/null; '
            f"i=0; while [ $i -lt 40 ]; do {alive}; sleep 0.05; i=$((i+1)); done; exit 1"
        )


SUPERVISORS = ("perl", "python")


@dataclass(frozen=True)
class PrepareStep:
    """What a host's first rank does before it waits for its go line (JobLayout.rank)."""

    archive_size: int  # bytes of workdir archive that follow on stdin; 0: nothing to unpack
    gzip: bool  # the archive is gzipped
    probe_port: bool  # report a free port (the scheduler's host)
    python: str  # the job's interpreter, for the port probe in shell
    simple: bool = False  # the archive is Archive.simple: watchdog.pl unpacks it itself, without tar

    @property
    def tar_flags(self) -> str:
        return tar_extract_flags(self.gzip)


@dataclass(frozen=True)
class Prepared:
    cpus: int
    supervisor: str  # one of SUPERVISORS
    port: int | None  # a free port on the first host, when probed


def parse_prepared(line: str, probe_port: bool) -> Prepared | None:
    """The words after PREPARED_MARK that the prepare step printed (watchdog.pl or JobLayout.shell_prepare), or None when they are not that."""
    words = line.split()
    if len(words) != (3 if probe_port else 2) or not words[0].isdigit() or words[1] not in SUPERVISORS:
        return None
    if probe_port and not words[2].isdigit():
        return None
    return Prepared(int(words[0]), words[1], int(words[2]) if probe_port else None)


@functools.cache
def watchdog_source() -> str:
    return Path(watchdog.__file__).read_text()


@functools.cache
def _perl_word() -> str:
    """perl_watchdog_source() quoted for the shell, once (it goes into every rank's command)."""
    return shlex.quote(perl_watchdog_source())


@functools.cache
def perl_watchdog_source() -> str:
    """watchdog.pl without comment lines, trailing comments (two spaces, then "# "), blank lines
    and indentation: it travels in every rank's command, and perl ignores all four."""
    text = Path(watchdog.__file__).with_suffix(".pl").read_text()
    lines = (re.sub(r"\s{2,}# .*$", "", line.strip()) for line in text.splitlines() if not line.lstrip().startswith("#"))
    return "\n".join(line for line in lines if line) + "\n"
