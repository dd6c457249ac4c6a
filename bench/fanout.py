"""Fan-out benchmark: how fast do all ranks of a trivial job start on N local sshd hosts, dlcfn
vs MXNet's classic launcher (`tools/launch.py --launcher ssh`, from the mxnet wheel), measured
in the same run on the same hosts; and how long from a rank's death to `dlcfn submit` exiting
with every process stopped.

  python bench/fanout.py [--hosts 8,32,64] [--repeat 3] [--death-hosts 8,32]

Start time = last rank's first instruction (a timestamp the rank writes) - launch of the
launcher process; both launchers pay their own interpreter start-up and imports. The classic
launcher is run from its file (not `python -m mxnet.tools.launch`, which would also import all of
mxnet, ~2 s): this favours the peer. It needs two shims, both outside its code: `Thread.isAlive`
(removed in Python 3.9) is restored, and an `ssh` wrapper on PATH adds `-F <client config>` with
the pool's key, port and known_hosts (it runs `ssh -o StrictHostKeyChecking=no host -p port`).

The classic launcher is measured twice. `classic` is the ssh client as it comes: OpenSSH 9.2's
default key exchange, sntrup761x25519 (post-quantum), costs ~130 ms of client CPU per
connection here, and paramiko cannot do it (it negotiates curve25519 with this sshd).
`classic-x25519` gives ssh `-o KexAlgorithms=curve25519-sha256`, the key exchange dlcfn gets: the
launchers' own costs, compared on the same cryptography.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dlcfn.local.sshd import SshHostPool, processes_with_env

# The ranks are shell scripts by default: the benchmark measures the launchers, not Python's
# start-up (~35 ms of CPU per rank here, the same for both; --rank python measures with it).
# args: STAMP_DIR EXPECTED [TRIGGER]. The scheduler lives until EXPECTED ranks have started, as
# in a real job (the classic launcher exits, abandoning ranks not yet started, when it ends).
STAMP_SH = """t=$(date +%s.%N)
d=$1; want=$2; trigger=$3
echo "$t" > "$d/${DMLC_ROLE:-x}-$$"
if [ "$DMLC_ROLE" = scheduler ]; then  # shell built-ins only: the wait costs no CPU to speak of
  i=0; while [ $i -lt 1200 ]; do set -- "$d"/*; [ $# -ge "$want" ] && break; sleep 0.05; i=$((i+1)); done
fi
if [ -n "$trigger" ]; then
  while [ ! -e "$trigger" ]; do sleep 0.01; done
  if [ "$DLCFN_PROCESS" = worker-1 ]; then date +%s.%N > "$d/death"; exit 3; fi
  sleep 600
fi
"""
STAMP_PY = """import os, sys, time
t = time.time()
d, expected = sys.argv[1], int(sys.argv[2])
open(os.path.join(d, "%s-%d" % (os.environ.get("DMLC_ROLE", "x"), os.getpid())), "w").write(repr(t))
deadline = time.time() + 60
while os.environ.get("DMLC_ROLE") == "scheduler" and len(os.listdir(d)) < expected and time.time() < deadline:
    time.sleep(0.01)
trigger = sys.argv[3] if len(sys.argv) > 3 else ""
if trigger:
    me = os.environ.get("DLCFN_PROCESS")
    while not os.path.exists(trigger):
        time.sleep(0.01)
    if me == "worker-1":
        open(os.path.join(d, "death"), "w").write(repr(time.time()))
        os._exit(3)
    time.sleep(600)
"""
CLASSIC_WRAPPER = """import runpy, sys, threading
threading.Thread.isAlive = threading.Thread.is_alive  # removed in Python 3.9; launch.py still calls it
path = sys.argv.pop(1)
sys.argv[0] = path
runpy.run_path(path, run_name="__main__")
"""


def classic_launch_py() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mxnet")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "tools" / "launch.py"


def make_workdir(tmp: Path) -> Path:
    wd = tmp / "code"
    wd.mkdir()
    (wd / "stamp.py").write_text(STAMP_PY)
    (wd / "stamp.sh").write_text(STAMP_SH)
    return wd


RANK = {"sh": ("/bin/sh", "stamp.sh"), "python": (sys.executable, "stamp.py")}  # --rank: interpreter, script


def last_stamp(stamps: Path, expected: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    """The latest rank start time, once `expected` ranks have written theirs."""
    exited_at = None
    while time.monotonic() < deadline:
        files = [f for f in stamps.iterdir() if f.name != "death"]
        if len(files) >= expected:
            return max(float(f.read_text() or 0) for f in files)
        if proc is not None and proc.poll() is not None:
            exited_at = exited_at or time.monotonic()
            if proc.returncode != 0 or time.monotonic() - exited_at > 5:  # exited 0 without starting every rank
                raise RuntimeError(f"launcher exited {proc.returncode} with {len(files)} of {expected} ranks started: "
                                   f"{proc.communicate()[1].decode()[-2000:]}")
        time.sleep(0.01)
    raise RuntimeError(f"only {len(list(stamps.iterdir()))} of {expected} ranks started: {sorted(f.name for f in stamps.iterdir())}")


@dataclass
class Bench:
    pool: SshHostPool
    tmp: Path
    wd: Path
    rank: str = "sh"
    account: "CpuAccount | None" = None

    def join_account(self) -> None:  # preexec_fn: the launcher enters the group before it runs
        if self.account is not None:
            self.account.join()


def run_dlcfn(b: Bench, n: int, stamps: Path, trigger: str = "", job_id: str = "") -> subprocess.Popen[bytes]:
    pool, tmp = b.pool, b.tmp
    job = tmp / "job.yaml"
    args = [str(stamps), str(n + 2)] + ([trigger] if trigger else [])
    interpreter, script = RANK[b.rank]
    job.write_text(yaml.safe_dump({"name": "fanout", "script": script, "args": args, "workdir": str(b.wd), "python": interpreter,
                                   "num_workers": n, "num_servers": 1, "timeout": 120}))
    cmd = [sys.executable, "-m", "dlcfn", "submit", str(job), "--hosts", str(pool.hosts_file), "--ssh-key", str(pool.user_key),
           "--known-hosts", str(pool.known_hosts)] + (["--job-id", job_id] if job_id else [])
    return subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "DLCFN_HOME": str(tmp / "home")}, preexec_fn=b.join_account)


SAME_KEX = "curve25519-sha256"  # what paramiko negotiates with OpenSSH 9.2 (it has no sntrup761x25519)


def run_classic(b: Bench, n: int, stamps: Path, kex: str = "") -> subprocess.Popen[bytes]:
    pool, tmp = b.pool, b.tmp
    shim = tmp / f"shim{'-' + kex if kex else ''}"
    shim.mkdir(exist_ok=True)
    options = f"-o KexAlgorithms={kex} " if kex else ""
    (shim / "ssh").write_text(f"#!/bin/sh\nexec /usr/bin/ssh -F {pool.ssh_config} {options}\"$@\"\n")
    (shim / "ssh").chmod(0o755)
    (shim / "wrapper.py").write_text(CLASSIC_WRAPPER)
    hosts = tmp / "classic_hosts"
    hosts.write_text("".join(f"{h.address}:{h.port}\n" for h in pool.hosts[:n]))
    cmd = [sys.executable, str(shim / "wrapper.py"), str(classic_launch_py()), "-n", str(n), "-s", "1", "--launcher", "ssh",
           "-H", str(hosts), RANK[b.rank][0], str(b.wd / RANK[b.rank][1]), str(stamps), str(n + 2)]
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    return subprocess.Popen(cmd, cwd=b.wd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, preexec_fn=b.join_account)


class CpuAccount:
    """A cgroup-v1 cpuacct group holding the sshd listeners (so every connection, session and
    remote rank they fork) and each launcher process (so its ssh clients and local scheduler):
    the exact CPU cost of a launch, whatever else the machine runs. None when unavailable."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self) -> None:
        self.path = self.ROOT / f"dlcfn-bench-{os.getpid()}"
        self.path.mkdir()

    @classmethod
    def create(cls) -> "CpuAccount | None":
        try:
            return cls()
        except OSError:
            return None

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def join(self) -> None:  # the calling process enters the group
        (self.path / "cgroup.procs").write_text("0")

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (self.ROOT / "cgroup.procs").write_text(pid)
            except OSError:
                pass
        self.path.rmdir()


def wait_sessions_gone(pool: SshHostPool, timeout: float = 10) -> None:
    """Until no sshd connection process is left: their CPU is then all in the account."""
    listeners = {h.pid for h in pool.hosts}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                busy = busy or ppid in listeners
        if not busy:
            return
        time.sleep(0.02)


def run_classic_same_kex(b: Bench, n: int, stamps: Path) -> subprocess.Popen[bytes]:
    return run_classic(b, n, stamps, SAME_KEX)


def start_time(launch, b: Bench, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds until the last rank started, CPU seconds of the whole launch or nan)."""
    stamps = Path(tempfile.mkdtemp(dir=b.tmp, prefix="stamps-"))
    account = b.account
    wait_sessions_gone(b.pool)
    cpu0 = account.seconds() if account else float("nan")
    t0 = time.time()
    proc = launch(b, n, stamps)
    try:
        last = last_stamp(stamps, n + 2, time.monotonic() + 120, proc)  # workers + 1 server + the scheduler
    finally:
        _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{launch.__name__} failed ({proc.returncode}): {err.decode()[-2000:]}")
    wait_sessions_gone(b.pool)
    return last - t0, (account.seconds() - cpu0) if account else float("nan")


def death_to_exit(b: Bench, n: int, job_id: str) -> float:
    stamps = Path(tempfile.mkdtemp(dir=b.tmp, prefix="death-"))
    trigger = str(stamps / "go")
    proc = run_dlcfn(b, n, stamps, trigger=trigger, job_id=job_id)
    last_stamp(stamps, n + 2, time.monotonic() + 120, proc)
    Path(trigger).write_text("")
    proc.communicate(timeout=60)
    exited = time.time()
    left = processes_with_env("DLCFN_JOB_ID", job_id)
    if proc.returncode != 1 or left:
        raise RuntimeError(f"expected exit 1 and nothing left, got {proc.returncode} and pids {left}")
    return exited - float((stamps / "death").read_text())


def cpu_probe() -> float:
    """CPU seconds for a fixed loop: this VM's speed drifts by up to 2x over a day, and the start
    times are CPU-bound, so the output says how fast the machine was (0.55-0.65 s: a fast stretch)."""
    t = time.process_time()
    sum(range(3 * 10**7))
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", default="8,32,64")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--death-hosts", default="8,32")
    ap.add_argument("--sshd-reexec", action="store_true",
                    help="stock sshd that re-executes itself per connection (local hosts run `sshd -r`; see SshHostPool.reexec)")
    ap.add_argument("--rank", choices=sorted(RANK), default="sh", help="what each rank runs (default: a shell script)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.hosts.split(",")]
    # dlcfn as installed: with its bytecode (see `make bytecode`; PYTHONDONTWRITEBYTECODE would
    # otherwise have every submit compile dlcfn from source).
    import compileall

    import dlcfn

    compileall.compile_dir(str(Path(dlcfn.__file__).parent), quiet=1)
    parent = Path.home() / ".cache" / "dlcfn-bench"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(dir=parent))
    pool = SshHostPool(tmp / "hosts", reexec=args.sshd_reexec)
    b = Bench(pool, tmp, make_workdir(tmp), args.rank, CpuAccount.create())
    try:
        pool.start(max(sizes + [int(x) for x in args.death_hosts.split(",") if x]))
        for h in pool.hosts:
            if b.account is not None and h.pid is not None:
                b.account.add(h.pid)
        print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; CPU probe {cpu_probe():.2f} s; {args.rank} ranks; "
              f"sshd {'re-exec per connection' if args.sshd_reexec else '-r'}; median of {args.repeat}")
        print("start time in s (CPU s of the whole launch: launcher, ssh clients, sshd, remote processes); "
              "ratio = peer / dlcfn")
        print(f"{'hosts':>5} {'dlcfn':>12} {'classic':>12} {'ratio':>6} {'classic-x25519':>15} {'ratio':>6}")
        for n in sizes:
            pool.write_client_files(pool.hosts[:n])
            runs = {launch: [start_time(launch, b, n) for _ in range(args.repeat)]
                    for launch in (run_dlcfn, run_classic, run_classic_same_kex)}
            t = {k: statistics.median(x for x, _ in v) for k, v in runs.items()}
            c = {k: statistics.median(y for _, y in v) for k, v in runs.items()}
            cell = {k: f"{t[k]:.2f} ({c[k]:.2f})" for k in runs}
            print(f"{n:>5} {cell[run_dlcfn]:>12} {cell[run_classic]:>12} {t[run_classic] / t[run_dlcfn]:>5.1f}x "
                  f"{cell[run_classic_same_kex]:>15} {t[run_classic_same_kex] / t[run_dlcfn]:>5.1f}x", flush=True)
        for i, n in enumerate(int(x) for x in args.death_hosts.split(",") if x):
            pool.write_client_files(pool.hosts[:n])
            times = [death_to_exit(b, n, f"death-{n}-{i}-{r}") for r in range(args.repeat)]
            print(f"rank death -> dlcfn exit, everything stopped, {n} hosts: median {statistics.median(times):.2f} s "
                  f"(max {max(times):.2f} s)", flush=True)
        print(f"CPU probe after: {cpu_probe():.2f} s")
    finally:
        pool.stop()
        if b.account is not None:
            b.account.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
