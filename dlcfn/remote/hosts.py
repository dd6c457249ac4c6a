"""SSH targets: where a host is, how to log in, which host key to expect, and the jump host in
between. Built from a hosts file (`user@host:port` per line) or from a cluster's inventory."""

from __future__ import annotations

import base64
import binascii
import functools
import getpass
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlcfn.errors import Finding, UserInputError, raise_for_findings

if TYPE_CHECKING:
    import paramiko

HOST_LINE_RE = re.compile(r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]*)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)(?::(?P<port>[^:]*))?$")


@dataclass(frozen=True)
class SshTarget:
    """One host to reach. `host` is the address as seen from the jump host when `jump` is set."""

    name: str  # label in prefixes and messages: the hosts-file host or the cluster node name
    host: str
    port: int = 22
    user: str = "root"
    key_file: str = ""
    known_hosts: str = ""
    jump: "SshTarget | None" = None

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH (and paramiko) file the host key under."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "host": self.host, "port": self.port, "user": self.user,
            "key_file": self.key_file, "known_hosts": self.known_hosts,
            "jump": self.jump.to_dict() if self.jump else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "SshTarget":
        jump = d.get("jump")
        fields = {k: v for k, v in d.items() if k != "jump"}
        return cls(**fields, jump=cls.from_dict(jump) if isinstance(jump, dict) else None)  # type: ignore[arg-type]


def parse_hosts_file(path: Path, key_file: str, known_hosts: str) -> list[SshTarget]:
    """Targets from a hosts file: one `[user@]host[:port]` per line, `#` comments, blank lines
    ignored. Every bad line is reported (file:line) before anything connects."""
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserInputError(f"--hosts: cannot read {path} ({e.__class__.__name__})") from e
    findings: list[Finding] = []
    targets: list[SshTarget] = []
    seen: dict[tuple[str, int], int] = {}
    default_user = getpass.getuser()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = HOST_LINE_RE.match(line)
        port_text = m.group("port") if m else None
        if not m or (port_text is not None and not (port_text.isdigit() and 1 <= int(port_text) <= 65535)):
            findings.append(Finding("host", f"{line!r} is not `[user@]host[:port]` with a port from 1 to 65535", line=lineno, source=str(path)))
            continue
        port = int(port_text) if port_text else 22
        key = (m.group("host"), port)
        if key in seen:
            findings.append(Finding("host", f"{line!r} repeats line {seen[key]}; list each host once", line=lineno, source=str(path)))
            continue
        seen[key] = lineno
        targets.append(SshTarget(name=m.group("host") if port == 22 else f"{m.group('host')}:{port}", host=m.group("host"),
                                 port=port, user=m.group("user") or default_user, key_file=key_file, known_hosts=known_hosts))
    raise_for_findings(findings)
    if not targets:
        raise UserInputError(f"--hosts: {path} lists no hosts; write one `[user@]host[:port]` per line")
    return targets


class KnownHosts:
    """A known_hosts file, read once and indexed by host name: a fan-out looks up every host, and
    paramiko's HostKeys parses every key of the file up front and scans all entries per lookup
    (O(hosts^2) per fan-out). Keys are decoded only for the hosts looked up.

    Same rules as paramiko (and OpenSSH) for what a name matches: exact names, `[host]:port`,
    hashed `|1|salt|hash` names; lines it cannot read are skipped. Keys listed under `@revoked`
    are never accepted (paramiko ignores marker lines; OpenSSH refuses such keys);
    `@cert-authority` lines are ignored (no certificates are used)."""

    def __init__(self, path: str) -> None:
        text = Path(path).read_text()
        self._plain: dict[str, list[tuple[str, str]]] = {}
        self._hashed: list[tuple[bytes, bytes, str, str]] = []  # salt, HMAC-SHA1 of the name, key type, base64 key
        self._revoked: set[str] = set()
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[0] == "@revoked":
                self._revoked.add(fields[3])
            if len(fields) < 3 or fields[0].startswith(("#", "@")):
                continue
            names, key_type, blob = fields[:3]
            for name in names.split(","):
                if name.startswith("|1|"):
                    try:
                        salt, digest = (base64.b64decode(part) for part in name[3:].split("|", 1))
                    except (ValueError, binascii.Error):
                        continue
                    self._hashed.append((salt, digest, key_type, blob))
                else:
                    self._plain.setdefault(name, []).append((key_type, blob))

    def lookup(self, name: str) -> "dict[str, paramiko.PKey] | None":
        """{key type: key} listed for `name`, like paramiko.HostKeys.lookup; None when none."""
        import paramiko

        entries = list(self._plain.get(name, ()))
        if self._hashed:
            raw = name.encode()
            entries += [(kt, blob) for salt, digest, kt, blob in self._hashed
                        if hmac.compare_digest(hmac.new(salt, raw, hashlib.sha1).digest(), digest)]
        keys: dict[str, paramiko.PKey] = {}
        for key_type, blob in entries:
            if blob in self._revoked:
                continue
            try:
                key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
            except (paramiko.SSHException, ValueError, TypeError, binascii.Error):
                continue
            keys.setdefault(key.get_name(), key)
        return keys or None


@functools.lru_cache(maxsize=8)
def _known_hosts_cached(path: str, mtime_ns: int, size: int, ino: int) -> KnownHosts:
    return KnownHosts(path)


def read_known_hosts(path: str) -> KnownHosts:
    """The file's index, cached while the file is unchanged (the target checks and the fan-out of
    one submit share it); an unreadable file is the user's error."""
    try:
        st = os.stat(path)
        return _known_hosts_cached(path, st.st_mtime_ns, st.st_size, st.st_ino)
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"--known-hosts: cannot read {path} ({e.__class__.__name__})") from e


def check_known_hosts(targets: list[SshTarget]) -> None:
    """Fail before connecting when a host has no key in its known_hosts file: an unknown host key
    is refused anyway, and saying so up front names the fix."""
    for t in [*targets, *{t.jump for t in targets if t.jump}]:
        if t is None:
            continue
        if read_known_hosts(t.known_hosts).lookup(t.known_hosts_name) is None:
            raise UserInputError(
                f"host {t.name}: no host key for {t.known_hosts_name} in {t.known_hosts}; "
                f"add it after checking it (ssh-keyscan -p {t.port} {t.host} >> {t.known_hosts})"
            )
