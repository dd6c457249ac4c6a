"""Shipping a directory: pack it once as tar.gz in memory, stream it into `tar -xz` on each host
(one SSH round trip per host, no SFTP session, no temporary file on either side)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from dlcfn.errors import DlcfnError
from dlcfn.remote.runner import CommandRunner

SKIP_DIRS = {".git", "__pycache__", ".venv", "results", ".pytest_cache"}
MAX_BYTES = 512 * 1024 * 1024  # larger workdirs belong on the shared file system or S3


def pack_dir(path: Path) -> bytes:
    """tar.gz of `path`'s contents (paths relative to it), skipping VCS, caches and results."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if any(p in SKIP_DIRS for p in parts) else info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for child in sorted(path.iterdir()):
            tar.add(child, arcname=child.name, filter=keep)
    if buf.tell() > MAX_BYTES:
        raise DlcfnError(f"workdir {path} packs to {buf.tell() >> 20} MiB; keep data out of it (results/, datasets) or use the shared file system")
    return buf.getvalue()


def unpack_remote(runner: CommandRunner, archive: bytes, remote_dir: str, pre: str = "") -> None:
    """Create `remote_dir` (a shell word, may use $VARS) and unpack `archive` into it."""
    cmd = f"{pre}mkdir -p {remote_dir} && tar -xzf - -C {remote_dir}"
    r = runner.run(cmd, stdin=archive, timeout=300)
    if not r.ok:
        raise DlcfnError(f"host {runner.name}: unpacking the workdir into {remote_dir} failed (exit {r.exit_status}): {r.tail(1)}")


def fetch_tree(runner: CommandRunner, remote_dir: str, patterns: list[str], dest: Path) -> list[str]:
    """Copy the files matching `patterns` (globs relative to remote_dir, validated by the job
    spec to contain no shell syntax) into dest; return the relative paths fetched."""
    globs = " ".join(patterns)  # unquoted on purpose: the remote shell expands them
    cmd = (f"cd {remote_dir} 2>/dev/null || exit 0; set --; for p in {globs}; do [ -e \"$p\" ] && set -- \"$@\" \"$p\"; done; "
           "[ $# -eq 0 ] && exit 0; tar -czf - -- \"$@\"")
    r = runner.run(cmd, timeout=600)
    if not r.ok:
        raise DlcfnError(f"host {runner.name}: collecting results failed (exit {r.exit_status}): {r.tail(1)}")
    if not r.stdout:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(r.stdout), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")  # "data" refuses absolute paths, links out, devices
        return sorted(m.name for m in tar.getmembers() if m.isfile())
