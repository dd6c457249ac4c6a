"""The rank supervisor's contract, for both implementations (watchdog.pl, the default, and
watchdog.py, for hosts without perl), run exactly as the rank command runs them but through
local pipes instead of an SSH channel: stdin is the channel, its EOF the stop signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcfn.launch.layout import perl_watchdog_source, watchdog_source

# How each is started with (ctl, name, grace): watchdog.pl also takes the work dir, its prepare
# step and the late variables, and reads a go line first (see JobLayout.rank).
SUPERVISORS = {
    "perl": lambda ctl, name, grace: ["perl", "-e", perl_watchdog_source(), ctl, name, grace, ctl, "-", "-"],
    "python": lambda ctl, name, grace: [sys.executable, "-I", "-S", "-c", watchdog_source(), ctl, name, grace],
}


@pytest.fixture(params=sorted(SUPERVISORS))
def supervise(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start a supervisor over argv; returns (Popen, ctl dir). Everything is killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str, grace: float = 2.0) -> subprocess.Popen[bytes]:
        cmd = [*SUPERVISORS[request.param](str(tmp_path), "rank-0", f"{grace:g}"), *argv]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        if request.param == "perl":
            p.stdin.write(b"go\n")  # type: ignore[union-attr]
            p.stdin.flush()  # type: ignore[union-attr]
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def rest_of(p: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What is left on stdout and stderr once p has exited. Not communicate(): it reads the raw
    pipes and would miss what pgid_of's readline() already pulled into the file's buffer."""
    assert p.stdout is not None and p.stderr is not None
    return p.stdout.read(), p.stderr.read()


def pgid_of(p: subprocess.Popen[bytes]) -> int:
    assert p.stderr is not None
    line = p.stderr.readline()
    assert line.startswith(b"dlcfn-watchdog pgid="), line
    return int(line.split(b"=")[1])


def group_gone(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


def pid_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return False  # a zombie nobody reaps would count as still running
        time.sleep(0.01)
    return False


def test_exit_code_and_output_pass_through(supervise, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "echo out; echo err >&2; exit 3")
    pgid_of(p)
    assert p.wait(timeout=10) == 3  # stdin still open: the rank ended by itself
    out, err = rest_of(p)
    assert out == b"out\nerr\n"  # the rank's stderr goes to stdout; stderr is the supervisor's
    assert b"signal=" not in err
    assert not (tmp_path / "rank-0.pgid").exists()


def test_rank_in_own_session(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "ps -o pid=,pgid=,sid= -p $$; read x")
    pgid = pgid_of(p)
    assert p.stdout is not None
    pid, pg, sid = (int(w) for w in p.stdout.readline().split())
    assert pid == pg == sid == pgid
    p.stdin.close()  # type: ignore[union-attr]
    p.wait(timeout=10)


def test_signal_reported(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "kill -KILL $$")
    pgid_of(p)
    assert p.wait(timeout=10) == 128 + signal.SIGKILL
    _, err = rest_of(p)
    assert b"dlcfn-watchdog signal=9" in err


def test_stdin_eof_kills_the_whole_group(supervise, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "sleep 300 & sleep 300 & echo started; wait")
    pgid = pgid_of(p)
    assert (tmp_path / "rank-0.pgid").read_text() == str(pgid)  # for `dlcfn cancel`
    assert p.stdout is not None and p.stdout.readline() == b"started\n"
    t0 = time.monotonic()
    p.stdin.close()  # type: ignore[union-attr]  # the channel is gone
    p.wait(timeout=10)
    assert time.monotonic() - t0 < 1.0
    assert group_gone(pgid, timeout=1)
    assert p.returncode == 128 + signal.SIGTERM
    assert not (tmp_path / "rank-0.pgid").exists()


def test_stragglers_killed_when_rank_exits(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "sleep 300 & echo $!; exit 0")
    pgid = pgid_of(p)
    assert p.stdout is not None
    straggler = int(p.stdout.readline())
    assert p.wait(timeout=10) == 0
    assert group_gone(pgid, timeout=1)
    assert pid_gone(straggler, timeout=1)  # killed and reaped (the supervisor is its subreaper)


def test_term_ignored_then_killed_after_grace(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done", grace=0.3)
    pgid = pgid_of(p)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    t0 = time.monotonic()
    p.stdin.close()  # type: ignore[union-attr]
    assert p.wait(timeout=10) == 128 + signal.SIGKILL
    assert 0.3 <= time.monotonic() - t0 < 3.0
    assert group_gone(pgid, timeout=1)


def test_supervisor_sigterm_stops_the_rank(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("sh", "-c", "echo ready; sleep 300")
    pgid = pgid_of(p)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=10)
    assert group_gone(pgid, timeout=1)


def test_cannot_run(supervise) -> None:  # type: ignore[no-untyped-def]
    p = supervise("/nonexistent/train")
    assert p.wait(timeout=10) == 127
    out, err = p.communicate(timeout=10)
    assert b"cannot run /nonexistent/train" in out + err  # either way it reaches the job's log


def test_perl_source_ships_without_comments() -> None:
    src = perl_watchdog_source()
    assert not any(line.lstrip().startswith("#") for line in src.splitlines())
    assert len(src) < 7000  # it travels in every rank command
    subprocess.run(["perl", "-c", "-e", src], check=True, capture_output=True)


# --- the whole rank command (JobLayout.rank): prepare step, go line, supervisor ----------------

LATE = ["DMLC_PS_ROOT_PORT", "OMP_NUM_THREADS"]
RANK_ARGV = ["sh", "-c", 'echo "port=$DMLC_PS_ROOT_PORT omp=$OMP_NUM_THREADS pwd=$(pwd)"; cat data.txt']


def archive_of(tmp_path: Path, gzip: bool = False) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gzip else "w") as tar:
        info = tarfile.TarInfo("data.txt")
        payload = b"shipped\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


@pytest.fixture
def no_perl_path(tmp_path: Path) -> str:
    """A PATH with what the shell fallback needs and no perl: a host image without perl."""
    import shutil

    bin_dir = tmp_path / "bin-no-perl"
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "head", "tar", "gzip", "nproc", "cat", "ps"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))  # not a pyenv shim script
    return str(bin_dir)


def start_rank(tmp_path: Path, supervisor: str, step, path: str | None = None) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    from dlcfn.launch.layout import JobLayout

    cmd = JobLayout("job-1").rank(sys.executable, "worker-0", RANK_ARGV, 1.0, LATE, supervisor, step)
    env = {**os.environ, "DLCFN_NODE_ROOT": str(tmp_path / "node")}
    if path is not None:
        env["PATH"] = path
    return subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@pytest.mark.parametrize("supervisor,gzip", [("perl", False), ("perl", True), ("python", False), ("auto", True), ("no-perl", False)])
def test_first_rank_prepares_then_waits_for_go(tmp_path: Path, supervisor: str, gzip: bool, no_perl_path: str) -> None:
    from dlcfn.launch.layout import PREPARED_MARK, PrepareStep, parse_prepared

    data = archive_of(tmp_path, gzip)
    step = PrepareStep(len(data), gzip, probe_port=True, python=sys.executable)
    p = start_rank(tmp_path, "auto" if supervisor == "no-perl" else supervisor, step, no_perl_path if supervisor == "no-perl" else None)
    assert p.stdin is not None and p.stderr is not None
    p.stdin.write(data)
    p.stdin.flush()
    mark = p.stderr.readline().decode()
    assert mark.startswith(PREPARED_MARK + " "), mark
    prepared = parse_prepared(mark[len(PREPARED_MARK):], probe_port=True)
    assert prepared is not None and prepared.port
    assert prepared.cpus == len(os.sched_getaffinity(0))
    assert prepared.supervisor == ("python" if supervisor in ("python", "no-perl") else "perl")
    job = tmp_path / "node" / ".dlcfn" / "jobs" / "job-1"
    assert (job / "work" / "data.txt").read_text() == "shipped\n" and (job / "ctl").is_dir()
    p.stdin.write(b"4567 3\n")  # the go line: the LATE values
    p.stdin.flush()
    assert p.wait(timeout=20) == 0, p.stderr.read()
    out = p.stdout.read().decode()  # type: ignore[union-attr]
    assert out == f"port=4567 omp=3 pwd={job / 'work'}\nshipped\n"


@pytest.mark.parametrize("supervisor", ["perl", "python"])
def test_eof_before_go_starts_nothing(tmp_path: Path, supervisor: str) -> None:
    from dlcfn.launch.layout import PrepareStep

    p = start_rank(tmp_path, supervisor, PrepareStep(0, False, probe_port=False, python=sys.executable))
    p.stdin.close()  # type: ignore[union-attr]  # the job was stopped while this host was starting
    assert p.wait(timeout=20) == 97
    assert p.stdout.read() == b""  # type: ignore[union-attr]


@pytest.mark.parametrize("supervisor", ["perl", "python"])
def test_prepare_failure_exits_98(tmp_path: Path, supervisor: str) -> None:
    from dlcfn.launch.layout import PREPARE_FAILED, PrepareStep

    (tmp_path / "node" / ".dlcfn").mkdir(parents=True)
    (tmp_path / "node" / ".dlcfn" / "jobs").write_text("a file where the jobs directory goes")
    p = start_rank(tmp_path, supervisor, PrepareStep(0, False, probe_port=False, python=sys.executable))
    _, err = p.communicate(timeout=20)
    assert p.returncode == PREPARE_FAILED
    assert b"Not a directory" in err


# --- watchdog.pl's own unpacker (Archive.simple: plain ustar, files and directories) -------------

def workdir_tree(root: Path) -> Path:
    """A workdir with what unpacking must get right: nesting, modes (an executable, a read-only
    dir with a file in it), an empty file, a file of exactly one block, a long path (ustar's
    prefix field), binary content and mtimes."""
    src = root / "src"
    (src / "pkg" / "sub").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "run.sh").write_text("#!/bin/sh\necho run\n")
    (src / "run.sh").chmod(0o755)
    (src / "empty").write_bytes(b"")
    (src / "block.bin").write_bytes(bytes(range(256)) * 2)  # exactly 512 bytes
    (src / "pkg" / "sub" / "data.bin").write_bytes(os.urandom(70_000))
    long_dir = src / ("d" * 90) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 80 + ".txt")).write_text("deep\n")  # 233 characters: over 100, needs the prefix
    (src / "ro").mkdir()
    (src / "ro" / "kept.txt").write_text("kept\n")
    for i, f in enumerate(sorted(p for p in src.rglob("*") if p.is_file())):
        os.utime(f, (1_600_000_000 + i, 1_600_000_000 + i))
    (src / "ro").chmod(0o555)
    return src


def tree_state(root: Path) -> dict[str, tuple[int, bytes | None, int | None]]:
    """path -> (mode bits, content or None for a dir, mtime for files)."""
    state = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        state[rel] = (st.st_mode & 0o7777, None, None) if p.is_dir() else (st.st_mode & 0o7777, p.read_bytes(), int(st.st_mtime))
    return state


def unpack_with_perl(tmp_path: Path, data: bytes, simple: bool = True):  # type: ignore[no-untyped-def]
    from dlcfn.launch.layout import PrepareStep

    step = PrepareStep(len(data), False, probe_port=False, python=sys.executable, simple=simple)
    p = start_rank(tmp_path, "perl", step)
    assert p.stdin is not None and p.stderr is not None
    try:
        p.stdin.write(data + b"4567 3\n")  # stdin stays open: its EOF would stop the rank
        p.stdin.flush()
    except BrokenPipeError:  # it gave up before reading all of it
        pass
    code = p.wait(timeout=20)
    err = p.stderr.read().decode()
    p.stdin.close()
    p.stdout.close()  # type: ignore[union-attr]
    p.stderr.close()
    return code, err


def test_perl_unpacks_simple_archives_like_tar(tmp_path: Path) -> None:
    from dlcfn.remote.transfer import pack_dir

    src = workdir_tree(tmp_path)
    try:
        archive = pack_dir(src)
        assert archive.simple and not archive.gzip
        code, err = unpack_with_perl(tmp_path, archive.data)
        work = tmp_path / "node" / ".dlcfn" / "jobs" / "job-1" / "work"
        assert code == 1, err  # the rank itself fails (no data.txt in this workdir): the unpacking is what is checked
        by_tar = tmp_path / "by-tar"
        by_tar.mkdir()
        subprocess.run(["tar", "-xf", "-", "-C", str(by_tar)], input=archive.data, check=True)
        assert tree_state(work) == tree_state(by_tar) == tree_state(src)
    finally:
        for d in (src / "ro", tmp_path / "by-tar" / "ro", tmp_path / "node" / ".dlcfn" / "jobs" / "job-1" / "work" / "ro"):
            if d.exists():
                d.chmod(0o755)


@pytest.mark.parametrize("damage", ["checksum", "truncated", "dotdot"])
def test_perl_refuses_a_damaged_archive(tmp_path: Path, damage: str) -> None:
    import io
    import tarfile

    from dlcfn.launch.layout import PREPARE_FAILED

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("../escape.txt" if damage == "dotdot" else "data.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    data = bytearray(buf.getvalue())
    if damage == "checksum":
        data[0] = ord("x")
    elif damage == "truncated":
        data = data[:512]  # the header, no content
    code, err = unpack_with_perl(tmp_path, bytes(data))
    assert code == PREPARE_FAILED, err
    why = {"checksum": "corrupt header", "truncated": "truncated", "dotdot": "unsafe path ../escape.txt"}[damage]
    assert f"unpacking the workdir into" in err and why in err, err
    assert not (tmp_path / "node" / ".dlcfn" / "jobs" / "escape.txt").exists()


def test_pack_dir_is_simple_only_without_links_or_long_names(tmp_path: Path) -> None:
    from dlcfn.remote.transfer import pack_dir

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("A = 1\n")
    assert pack_dir(src).simple
    (src / "link").symlink_to("a.py")
    assert not pack_dir(src).simple  # tar unpacks links
    (src / "link").unlink()
    import io
    import tarfile

    members = tarfile.open(fileobj=io.BytesIO(pack_dir(src).data), mode="r:").getmembers()
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}  # owned by whoever unpacks
    (src / ("x" * 120)).write_text("a name ustar cannot hold\n")
    archive = pack_dir(src)
    assert not archive.simple  # pax headers: tar
    assert "x" * 120 in tarfile_names(archive.data)


def tarfile_names(data: bytes) -> list[str]:
    import io
    import tarfile

    return tarfile.open(fileobj=io.BytesIO(data), mode="r:").getnames()
