"""The known_hosts index (KnownHosts) answers like paramiko's HostKeys for every form of name a
known_hosts file holds, refuses revoked keys, and is read again when the file changes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paramiko
import pytest

from dlcfn.errors import UserInputError
from dlcfn.remote.hosts import KnownHosts, SshTarget, check_known_hosts, read_known_hosts


def keypair(tmp_path: Path, name: str, kind: str = "ecdsa") -> str:
    """`type base64` of a fresh public key."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def blob(key: "paramiko.PKey") -> str:
    return key.get_base64()


def test_answers_like_paramiko(tmp_path: Path) -> None:
    k1, k2, k3, k4 = (keypair(tmp_path, f"k{i}", kind) for i, kind in enumerate(["ecdsa", "ed25519", "rsa", "ecdsa"]))
    hashed = tmp_path / "hashed"
    hashed.write_text(f"10.0.0.9 {k4}\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)  # |1|salt|hash names
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment\n\n"
        f"10.0.0.1 {k1}\n"
        f"10.0.0.1 {k2}\n"  # two key types for one host
        f"[10.0.0.2]:2222,node-b {k3}\n"  # a port, and two names on one line
        "10.0.0.5 ssh-ed25519 !!not-base64!!\n"  # unreadable: skipped
        "just-a-name\n"
        + hashed.read_text()
    )
    readable = tmp_path / "readable"  # paramiko raises on the unreadable line (OpenSSH skips it)
    readable.write_text("".join(line + "\n" for line in path.read_text().splitlines() if "!!" not in line))
    ours, theirs = KnownHosts(str(path)), paramiko.HostKeys(str(readable))
    for name in ["10.0.0.1", "[10.0.0.2]:2222", "node-b", "10.0.0.2", "10.0.0.9", "10.0.0.5", "nowhere"]:
        got, want = ours.lookup(name), theirs.lookup(name)
        assert (got is None) == (want is None), name
        if got is not None and want is not None:
            assert {t: blob(k) for t, k in got.items()} == {t: blob(want[t]) for t in want.keys()}, name
    assert sorted(ours.lookup("10.0.0.1") or {}) == ["ecdsa-sha2-nistp256", "ssh-ed25519"]
    assert ours.lookup("10.0.0.9") is not None  # found through its hash


def test_revoked_keys_are_never_accepted(tmp_path: Path) -> None:
    good, bad = keypair(tmp_path, "good"), keypair(tmp_path, "bad")
    path = tmp_path / "known_hosts"
    path.write_text(f"10.0.0.1 {bad}\n10.0.0.2 {bad}\n10.0.0.2 {good}\n@revoked * {bad}\n@cert-authority * {good}\n")
    index = KnownHosts(str(path))
    assert index.lookup("10.0.0.1") is None  # its only key is revoked
    assert [blob(k) for k in (index.lookup("10.0.0.2") or {}).values()] == [good.split()[1]]
    assert index.lookup("*") is None  # marker lines list no hosts
    target = SshTarget("10.0.0.1", "10.0.0.1", known_hosts=str(path))
    with pytest.raises(UserInputError, match="no host key for 10.0.0.1"):
        check_known_hosts([target])


def test_read_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"10.0.0.1 {keypair(tmp_path, 'a')}\n")
    first = read_known_hosts(str(path))
    assert read_known_hosts(str(path)) is first  # one read per submit
    path.write_text(f"10.0.0.2 {keypair(tmp_path, 'b')}\n")
    os.utime(path, ns=(1, 1))  # a changed file is read again even within one mtime tick
    second = read_known_hosts(str(path))
    assert second is not first and second.lookup("10.0.0.1") is None and second.lookup("10.0.0.2") is not None
    with pytest.raises(UserInputError, match="--known-hosts: cannot read"):
        read_known_hosts(str(tmp_path / "missing"))
