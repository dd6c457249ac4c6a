"""The SSH runner against real sshd hosts: env quoting, host key checks, jump host, sessions
beyond MaxSessions, dead links, file shipping."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import pytest

from dlcfn.errors import UserInputError
from dlcfn.remote.fanout import close_all, connect_all, for_each
from dlcfn.remote.hosts import SshTarget, check_known_hosts, parse_hosts_file
from dlcfn.remote.ssh import EarlySockets, HostUnreachable
from dlcfn.remote.transfer import fetch_tree, pack_dir


def targets_of(pool) -> list[SshTarget]:  # type: ignore[no-untyped-def]
    return parse_hosts_file(pool.hosts_file, str(pool.user_key), str(pool.known_hosts))


def test_env_is_quoted_and_each_host_has_its_root(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    runners = connect_all(targets_of(pool))
    try:
        tricky = "a b; echo pwned $HOME 'q' \"d\" `x`"
        outs = for_each(runners, lambda r: r.run('printf "%s|%s" "$V" "$DLCFN_NODE_ROOT"', env={"V": tricky}))
        assert [o.stdout.decode() for o in outs] == [f"{tricky}|{h.root}" for h in pool.hosts]
        assert runners[0].run("exit 7").exit_status == 7
    finally:
        close_all(runners)


def test_more_sessions_than_max_sessions_on_one_host(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(1)
    [runner] = connect_all(targets_of(pool))
    try:
        procs = [runner.start("read x; echo $x") for _ in range(14)]  # stock MaxSessions is 10
        for i, p in enumerate(procs):
            p.chan.sendall(f"{i}\n".encode())
        assert [p.read_stdout().strip() for p in procs] == [str(i).encode() for i in range(14)]
        assert [p.wait() for p in procs] == [0] * 14
        for p in procs:
            p.close()
    finally:
        runner.close()


def test_unknown_and_wrong_host_keys_are_refused(ssh_pool_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    [t1, t2] = targets_of(pool)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(UserInputError, match="no host key"):
        check_known_hosts([SshTarget(**{**t1.to_dict(), "known_hosts": str(empty), "jump": None})])
    # t2's key filed under t1's name: a man in the middle, as far as the client can tell.
    swapped = tmp_path / "swapped"
    line2 = [l for l in pool.known_hosts.read_text().splitlines() if t2.known_hosts_name in l][0]
    swapped.write_text(line2.replace(t2.known_hosts_name, t1.known_hosts_name) + "\n")
    with pytest.raises(UserInputError, match="does not match"):
        connect_all([SshTarget(**{**t1.to_dict(), "known_hosts": str(swapped), "jump": None})])
    with pytest.raises(UserInputError, match="unknown host key"):
        connect_all([SshTarget(**{**t1.to_dict(), "known_hosts": str(empty), "jump": None})])


def test_jump_host_reaches_the_others_through_the_first(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    first, *rest = targets_of(pool)
    behind = [SshTarget(t.name, t.host, t.port, t.user, t.key_file, t.known_hosts, jump=first) for t in rest]
    runners = connect_all([first, *behind])
    try:
        outs = for_each(runners, lambda r: r.run("echo $DLCFN_NODE_ROOT"))
        assert [o.stdout.decode().strip() for o in outs] == [str(h.root) for h in pool.hosts]
        assert runners[1].jump is runners[0]
        # The path goes through the first host: once its sshd dies, the others are cut off too.
        pool.kill_host(pool.hosts[0])
        with pytest.raises(HostUnreachable):
            for _ in range(50):  # the transport notices the closed jump channel asynchronously
                runners[2].run("true")
    finally:
        close_all(runners)


def test_unreachable_host_is_named(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    targets = targets_of(pool)
    pool.kill_host(pool.hosts[1])
    with pytest.raises(HostUnreachable, match=f"host {targets[1].name}: cannot connect"):
        connect_all(targets)


def test_early_sockets_carry_the_handshakes(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    targets = targets_of(pool)
    pool.kill_host(pool.hosts[2])  # nothing listens there: its early connect fails
    early = EarlySockets(targets)
    assert len(early._socks) == 3  # non-blocking: started, not finished
    with pytest.raises(HostUnreachable, match=f"host {targets[2].name}: cannot connect"):
        connect_all(targets, early)  # the failed one falls back to a normal connect, which names it
    assert early._socks == {}  # every socket was taken or closed

    early = EarlySockets(targets[:2])
    taken = early.take(targets[0])
    assert taken is not None and taken.gettimeout() == pytest.approx(10.0)
    taken.close()
    runners = connect_all(targets[:2], early)  # host 0's socket was taken already: a fresh connect
    try:
        assert [r.run("echo ok").stdout for r in runners] == [b"ok\n", b"ok\n"]
    finally:
        close_all(runners)


def test_early_sockets_skip_names_and_jumped_hosts() -> None:
    by_name = SshTarget("n", "localhost", 22, "u", "k", "kh")
    jumped = SshTarget("j", "10.0.0.2", 22, "u", "k", "kh", jump=by_name)
    early = EarlySockets([by_name, jumped])
    assert early._socks == {}  # no DNS lookup, no connection the jump host would make anyway
    early.close()


def test_a_closed_runner_never_reconnects(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(1)
    [runner] = connect_all(targets_of(pool))
    runner.close()
    with pytest.raises(HostUnreachable, match="connection closed"):
        runner.transport()  # a late liveness ping lands here: no new connection behind the job's back
    with pytest.raises(HostUnreachable):
        runner.run("true")
    assert runner._conns == []


def test_killed_sshd_ends_the_running_command(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(1)
    [runner] = connect_all(targets_of(pool))
    try:
        proc = runner.start("sleep 30")
        status: list[int] = []
        t = threading.Thread(target=lambda: status.append(proc.wait()))
        t.start()
        pool.kill_host(pool.hosts[0])
        t.join(timeout=10)
        assert status == [-1]
    finally:
        runner.close()


def test_ship_and_collect(ssh_pool_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(2)
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("A = 1\n")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"junk")
    archive = pack_dir(src)
    assert not archive.gzip  # small: a plain tar
    names = tarfile.open(fileobj=io.BytesIO(archive.data), mode="r:").getnames()
    assert "pkg/a.py" in names and not any("__pycache__" in n for n in names)
    (src / "big.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB: over GZIP_OVER
    big = pack_dir(src)
    assert big.gzip and len(big.data) < 100_000
    assert "big.bin" in tarfile.open(fileobj=io.BytesIO(big.data), mode="r:gz").getnames()
    runners = connect_all(targets_of(pool))
    try:
        for_each(runners, lambda r: r.run(f'mkdir -p "$DLCFN_NODE_ROOT/w" && tar {archive.tar_flags} - -C "$DLCFN_NODE_ROOT/w"',
                                          stdin=archive.data))
        for_each(runners, lambda r: r.run('cd "$DLCFN_NODE_ROOT/w" && mkdir out && echo $DLCFN_NODE_ROOT > out/r.txt'))
        got = fetch_tree(runners[1], '"$DLCFN_NODE_ROOT/w"', ["out/*.txt", "nothing/*"], tmp_path / "back")
        assert got == ["out/r.txt"]
        assert (tmp_path / "back" / "out" / "r.txt").read_text().strip() == str(pool.hosts[1].root)
        assert (pool.hosts[0].root / "w" / "pkg" / "a.py").read_text() == "A = 1\n"
    finally:
        close_all(runners)


def test_connections_use_aes_gcm(ssh_pool_factory) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(1)
    [runner] = connect_all(targets_of(pool))
    try:
        transport = runner.transport()
        assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
        assert runner.run("echo fine").stdout == b"fine\n"
    finally:
        runner.close()
