"""Shipping a directory: pack it once as a tar in memory (gzipped when large), streamed into
`tar -x` on each host inside the first rank's session (JobLayout.rank with a PrepareStep: no extra round trip,
no SFTP session, no temporary file on either side); collecting results the same way back."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from dlcfn.errors import DlcfnError
from dlcfn.remote.runner import CommandRunner

SKIP_DIRS = {".git", "__pycache__", ".venv", "results", ".pytest_cache"}
MAX_BYTES = 512 * 1024 * 1024  # larger workdirs belong on the shared file system or S3
GZIP_OVER = 1024 * 1024  # bytes of tar


@dataclass(frozen=True)
class Archive:
    data: bytes  # a tar, gzipped when `gzip`
    gzip: bool
    # A plain ustar of regular files and directories only (no links, devices or extended
    # headers): simple enough for the Perl supervisor to unpack without a `tar` process.
    simple: bool = False

    @property
    def tar_flags(self) -> str:
        return tar_extract_flags(self.gzip)


def tar_extract_flags(gzip: bool) -> str:
    """`tar` flags that unpack an archive from stdin."""
    return "-xzf" if gzip else "-xf"


def pack_dir(path: Path) -> Archive:
    """A tar of `path`'s contents (paths relative to it), skipping VCS, caches and results;
    gzipped only when over GZIP_OVER: below that, gzip costs each host one more process and
    saves nothing a data-centre link would notice."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if any(p in SKIP_DIRS for p in parts):
            return None
        # No owner: files belong to whoever unpacks them. Kept, a root `tar -x` on a node would
        # hand them to whichever local user has this machine's uid; watchdog.pl ignores it anyway.
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def pack(fmt: int) -> tuple[io.BytesIO, bool]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            for child in sorted(path.iterdir()):
                tar.add(child, arcname=child.name, filter=keep)
            return buf, all(m.isfile() or m.isdir() for m in tar.getmembers())

    try:  # ustar when every name, size and id fits its fields: no extended headers
        buf, simple = pack(tarfile.USTAR_FORMAT)
    except ValueError:
        (buf, _), simple = pack(tarfile.PAX_FORMAT), False
    if buf.tell() <= GZIP_OVER:
        return Archive(buf.getvalue(), gzip=False, simple=simple)
    data = gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)
    if len(data) > MAX_BYTES:
        raise DlcfnError(f"workdir {path} packs to {len(data) >> 20} MiB; keep data out of it (results/, datasets) or use the shared file system")
    return Archive(data, gzip=True)


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
