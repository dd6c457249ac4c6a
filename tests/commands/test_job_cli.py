"""`dlcfn submit` on bad input: one line naming the field and the fix, exit 2, and nothing
started: no SSH login on any host (sshd logged none), nothing shipped, no record, no results."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dlcfn.cli import main
from dlcfn.inventory import ClusterState, Node, save_state
from dlcfn.local.sshd import SshHostPool

TRAIN = "print('hi')\n"
GOOD_JOB = f"name: j\nscript: train.py\nnum_workers: 2\npython: {sys.executable}\n"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> SshHostPool:  # one pair of hosts for the whole table
    import shutil
    import tempfile

    parent = Path.home() / ".cache" / "dlcfn-tests"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    p = SshHostPool(Path(tempfile.mkdtemp(dir=parent, prefix="cli-")))
    try:
        p.start(2)
        yield p  # type: ignore[misc]
    finally:
        p.stop()
        shutil.rmtree(p.base_dir, ignore_errors=True)


def host_line(pool: SshHostPool, i: int = 0) -> str:
    return pool.hosts[i].spec


Case = tuple[str, str, Callable[[SshHostPool, Path], list[str]], str]


def files(pool: SshHostPool, tmp: Path, job: str = GOOD_JOB, hosts: str | None = None, known: str | None = None,
          key: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    (tmp / "train.py").write_text(TRAIN)
    (tmp / "job.yaml").write_text(job)
    (tmp / "hosts").write_text(hosts if hosts is not None else "".join(f"{h.spec}\n" for h in pool.hosts))
    kh = tmp / "known_hosts"
    kh.write_text(known if known is not None else pool.known_hosts.read_text())
    k = tmp / "key"
    k.write_text(key) if key is not None else k.write_bytes(pool.user_key.read_bytes())
    k.chmod(0o600)
    return ["submit", str(tmp / "job.yaml"), "--hosts", str(tmp / "hosts"), "--ssh-key", str(k), "--known-hosts", str(kh), *extra]


def swapped_keys(pool: SshHostPool) -> str:
    a, b = pool.known_hosts.read_text().splitlines()[:2]
    return f"{a.split()[0]} {' '.join(b.split()[1:])}\n{b}\n"  # host 1 presents a key filed for host 2


def cluster(pool: SshHostPool, tmp: Path, home: Path) -> list[str]:
    h = pool.hosts[0]
    state = ClusterState(name="c1", provider="local", region="us-east-1", stack_name="c1", ssh_user="root",
                         ssh_key=str(pool.user_key), known_hosts=str(pool.known_hosts),
                         nodes=[Node("master", "master", "i-1", private_ip=h.address, ssh_port=h.port, gpus=0)])
    save_state(home / "clusters" / "c1" / "state.json", state)
    args = files(pool, tmp, job=GOOD_JOB + "gpus_per_worker: 1\n")
    return args[:2] + ["--cluster", "c1"]


CASES: list[tuple[str, Callable[..., list[str]], str]] = [
    ("unknown key", lambda p, t, h: files(p, t, GOOD_JOB + "num_sever: 1\n"), "num_sever: unknown key (did you mean 'num_servers'?)"),
    ("bad kvstore", lambda p, t, h: files(p, t, GOOD_JOB + "kvstore: dist\n"), "kvstore: 'dist' is not allowed"),
    ("missing script", lambda p, t, h: files(p, t, GOOD_JOB.replace("train.py", "nope.py")), "script:"),
    ("zero workers", lambda p, t, h: files(p, t, GOOD_JOB.replace("num_workers: 2", "num_workers: 0")), "num_workers: must be from 1"),
    ("reserved env", lambda p, t, h: files(p, t, GOOD_JOB + "env:\n  DMLC_NUM_WORKER: 3\n"), "env.DMLC_NUM_WORKER: is set by dlcfn"),
    ("bad yaml", lambda p, t, h: files(p, t, "name: [j\n"), "invalid YAML"),
    ("absolute result", lambda p, t, h: files(p, t, GOOD_JOB + "results: [/etc/*]\n"), "results.0: '/etc/*' must be a relative path"),
    ("no job file", lambda p, t, h: ["submit", str(t / "none.yaml"), "--hosts", "x"], "none.yaml does not exist"),
    ("bad port", lambda p, t, h: files(p, t, hosts="root@127.0.0.1:99999\n"), "hosts:1: host: 'root@127.0.0.1:99999' is not"),
    ("garbage host", lambda p, t, h: files(p, t, hosts="# c\nroot@@x\n"), "hosts:2: host: 'root@@x' is not"),
    ("duplicate host", lambda p, t, h: files(p, t, hosts=f"{host_line(p)}\n{host_line(p)}\n"), "repeats line 1; list each host once"),
    ("empty hosts", lambda p, t, h: files(p, t, hosts="# nothing\n"), "lists no hosts"),
    ("missing hosts file", lambda p, t, h: files(p, t)[:3] + [str(t / "nohosts")] + files(p, t)[4:], "--hosts: cannot read"),
    ("no key option", lambda p, t, h: files(p, t)[:4], "--hosts needs --ssh-key and --known-hosts"),
    ("not a key", lambda p, t, h: files(p, t, key="hello\n"), "is not a usable unencrypted private key"),
    ("unknown host key", lambda p, t, h: files(p, t, known=p.known_hosts.read_text().splitlines()[0] + "\n"), "no host key for"),
    ("wrong host key", lambda p, t, h: files(p, t, known=swapped_keys(p)), "host key does not match"),
    ("both targets", lambda p, t, h: files(p, t) + ["--cluster", "c"], "--cluster and --hosts both given"),
    ("cluster with key", lambda p, t, h: files(p, t)[:2] + ["--cluster", "c", "--ssh-key", "k"], "--ssh-key/--known-hosts go with --hosts"),
    ("no target", lambda p, t, h: files(p, t)[:2], "say where to run: --cluster NAME or --hosts FILE"),
    ("unknown cluster", lambda p, t, h: files(p, t)[:2] + ["--cluster", "nope"], "cluster 'nope' is not known here"),
    ("bad job id", lambda p, t, h: files(p, t, extra=("--job-id", "a b")), "--job-id: 'a b' must be letters"),
    ("gpus do not fit", lambda p, t, h: cluster(p, t, h), "gpus_per_worker: 2 workers x 1 GPUs do not fit on master"),
]


@pytest.mark.parametrize("name,make,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_started(pool: SshHostPool, tmp_path: Path, dlcfn_home: Path, in_tmp_cwd: Path,
                                                       capsys: pytest.CaptureFixture[str], name: str, make, expected: str) -> None:  # type: ignore[no-untyped-def]
    logins_before = [_logins(h.dir) for h in pool.hosts]
    args = make(pool, tmp_path, dlcfn_home)
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("dlcfn: error: ") and expected in err, err
    if name != "wrong host key":  # found while connecting (in parallel): others may log in, and run nothing
        assert [_logins(h.dir) for h in pool.hosts] == logins_before  # no SSH login, so nothing ran or shipped
    assert not any((h.root / ".dlcfn").exists() for h in pool.hosts)  # the first remote command creates it
    assert not (in_tmp_cwd / "results").exists() and not (dlcfn_home / "jobs").exists()


def test_the_good_input_of_the_table_does_run(pool: SshHostPool, tmp_path: Path, dlcfn_home: Path, in_tmp_cwd: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The table's baseline files are good: each case above fails for its own mistake only."""
    with pytest.raises(SystemExit) as info:
        main(files(pool, tmp_path, extra=("--job-id", "good")))
    out = capsys.readouterr()
    assert info.value.code == 0, out.err
    assert "job good: succeeded" in out.out and (in_tmp_cwd / "results" / "good" / "job.json").exists()
    # history and logs of the finished job
    with pytest.raises(SystemExit) as info:
        main(["jobs"])
    listing = capsys.readouterr().out
    assert info.value.code == 0 and "good" in listing and "succeeded" in listing
    (tmp_path / "train.py").write_text("print('hi')\n")
    with pytest.raises(SystemExit):
        main(["logs", "good"])
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        [f"[{n}] hi" for n in ("scheduler-0", "server-0", "server-1", "worker-0", "worker-1")])
    with pytest.raises(SystemExit) as info:
        main(["logs", "good", "worker-1"])
    assert info.value.code == 0 and capsys.readouterr().out == "hi\n"
    with pytest.raises(SystemExit) as info:
        main(["logs", "good", "wroker-1"])
    assert info.value.code == 2 and "did you mean 'worker-1'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["cancel", "good"])
    assert info.value.code == 2 and "already ended (succeeded); nothing to cancel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["logs", "god"])
    assert info.value.code == 2 and "no job 'god' (did you mean 'good'?)" in capsys.readouterr().err


def test_dry_run_prints_the_plan_and_starts_nothing(pool: SshHostPool, tmp_path: Path, dlcfn_home: Path, in_tmp_cwd: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    logins_before = [_logins(h.dir) for h in pool.hosts]
    with pytest.raises(SystemExit) as info:
        main(files(pool, tmp_path, extra=("--dry-run", "--job-id", "dry")))
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert f"scheduler-0    on {pool.hosts[0].address}:{pool.hosts[0].port}" in out
    assert f"worker-1       on {pool.hosts[1].address}:{pool.hosts[1].port}" in out and "dry run: nothing was started" in out
    assert [_logins(h.dir) for h in pool.hosts] == logins_before


def _logins(host_dir: Path) -> int:
    return (host_dir / "sshd.log").read_text().count("Accepted publickey")
