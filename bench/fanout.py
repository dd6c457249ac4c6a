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
from pathlib import Path

import yaml

from dlcfn.local.sshd import SshHostPool, processes_with_env

# The ranks are shell scripts by default: the benchmark measures the launchers, not Python's
# start-up (~35 ms of CPU per rank here, the same for both; --rank python measures with it).
STAMP_SH = """t=$(date +%s.%N)
echo "$t" > "$1/${DMLC_ROLE:-x}-$$"
if [ -n "$2" ]; then
  while [ ! -e "$2" ]; do sleep 0.01; done
  if [ "$DLCFN_PROCESS" = worker-1 ]; then date +%s.%N > "$1/death"; exit 3; fi
  sleep 600
fi
"""
STAMP_PY = """import os, sys, time
t = time.time()
d = sys.argv[1]
open(os.path.join(d, "%s-%d" % (os.environ.get("DMLC_ROLE", "x"), os.getpid())), "w").write(repr(t))
trigger = sys.argv[2] if len(sys.argv) > 2 else ""
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


RANK = {"sh": ("/bin/sh", "stamp.sh"), "python": (sys.executable, "stamp.py")}  # interpreter, script; set by --rank
RANK_KIND = ["sh"]


def last_stamp(stamps: Path, expected: int, deadline: float, proc: subprocess.Popen[bytes] | None = None) -> float:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() not in (None, 0):
            raise RuntimeError(f"launcher failed ({proc.returncode}): {proc.communicate()[1].decode()[-2000:]}")
        files = [f for f in stamps.iterdir() if f.name != "death"]
        if len(files) >= expected:
            return max(float(f.read_text() or 0) for f in files)
        time.sleep(0.01)
    raise RuntimeError(f"only {len(list(stamps.iterdir()))} of {expected} ranks started")


def run_dlcfn(pool: SshHostPool, tmp: Path, wd: Path, n: int, stamps: Path, trigger: str = "", job_id: str = "") -> subprocess.Popen[bytes]:
    job = tmp / "job.yaml"
    args = [str(stamps)] + ([trigger] if trigger else [])
    interpreter, script = RANK[RANK_KIND[0]]
    job.write_text(yaml.safe_dump({"name": "fanout", "script": script, "args": args, "workdir": str(wd), "python": interpreter,
                                   "num_workers": n, "num_servers": 1, "timeout": 120}))
    cmd = [sys.executable, "-m", "dlcfn", "submit", str(job), "--hosts", str(pool.hosts_file), "--ssh-key", str(pool.user_key),
           "--known-hosts", str(pool.known_hosts)] + (["--job-id", job_id] if job_id else [])
    return subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "DLCFN_HOME": str(tmp / "home")})


def run_classic(pool: SshHostPool, tmp: Path, wd: Path, n: int, stamps: Path) -> subprocess.Popen[bytes]:
    shim = tmp / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "ssh").write_text(f"#!/bin/sh\nexec /usr/bin/ssh -F {pool.ssh_config} \"$@\"\n")
    (shim / "ssh").chmod(0o755)
    (shim / "wrapper.py").write_text(CLASSIC_WRAPPER)
    hosts = tmp / "classic_hosts"
    hosts.write_text("".join(f"{h.address}:{h.port}\n" for h in pool.hosts))
    cmd = [sys.executable, str(shim / "wrapper.py"), str(classic_launch_py()), "-n", str(n), "-s", "1", "--launcher", "ssh",
           "-H", str(hosts), RANK[RANK_KIND[0]][0], str(wd / RANK[RANK_KIND[0]][1]), str(stamps)]
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    return subprocess.Popen(cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def start_time(launch, pool: SshHostPool, tmp: Path, wd: Path, n: int) -> float:  # type: ignore[no-untyped-def]
    stamps = Path(tempfile.mkdtemp(dir=tmp, prefix="stamps-"))
    t0 = time.time()
    proc = launch(pool, tmp, wd, n, stamps)
    try:
        last = last_stamp(stamps, n + 2, time.monotonic() + 120, proc)  # workers + 1 server + the scheduler
    finally:
        _, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{launch.__name__} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return last - t0


def death_to_exit(pool: SshHostPool, tmp: Path, wd: Path, n: int, job_id: str) -> float:
    stamps = Path(tempfile.mkdtemp(dir=tmp, prefix="death-"))
    trigger = str(stamps / "go")
    proc = run_dlcfn(pool, tmp, wd, n, stamps, trigger=trigger, job_id=job_id)
    last_stamp(stamps, n + 2, time.monotonic() + 120, proc)
    Path(trigger).write_text("")
    proc.communicate(timeout=60)
    exited = time.time()
    left = processes_with_env("DLCFN_JOB_ID", job_id)
    if proc.returncode != 1 or left:
        raise RuntimeError(f"expected exit 1 and nothing left, got {proc.returncode} and pids {left}")
    if os.environ.get("BENCH_DEBUG"):
        import json
        rec = json.loads((tmp / "results" / job_id / "job.json").read_text())
        print(rec["timings"], [(p["name"], p["exit"], p["ended_at"]) for p in rec["processes"]], float((stamps / "death").read_text()))
    return exited - float((stamps / "death").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", default="8,32,64")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--death-hosts", default="8,32")
    ap.add_argument("--rank", choices=sorted(RANK), default="sh", help="what each rank runs (default: a shell script)")
    args = ap.parse_args()
    RANK_KIND[0] = args.rank
    sizes = [int(x) for x in args.hosts.split(",")]
    parent = Path.home() / ".cache" / "dlcfn-bench"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(dir=parent))
    pool = SshHostPool(tmp / "hosts")
    try:
        pool.start(max(sizes + [int(x) for x in args.death_hosts.split(",") if x]))
        wd = make_workdir(tmp)
        all_hosts = list(pool.hosts)
        print(f"{'hosts':>5} {'dlcfn s':>8} {'classic s':>10} {'ratio':>6}   (median of {args.repeat}, start of all ranks, {args.rank} ranks)")
        for n in sizes:
            pool.hosts = all_hosts[:n]
            pool._write_client_files()
            ours = [start_time(run_dlcfn, pool, tmp, wd, n) for _ in range(args.repeat)]
            theirs = [start_time(run_classic, pool, tmp, wd, n) for _ in range(args.repeat)]
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"{n:>5} {a:>8.2f} {b:>10.2f} {b / a:>5.1f}x", flush=True)
        for i, n in enumerate(int(x) for x in args.death_hosts.split(",") if x):
            pool.hosts = all_hosts[:n]
            pool._write_client_files()
            times = [death_to_exit(pool, tmp, wd, n, f"death-{n}-{i}-{r}") for r in range(args.repeat)]
            print(f"rank death -> dlcfn exit, everything stopped, {n} hosts: median {statistics.median(times):.2f} s "
                  f"(max {max(times):.2f} s)", flush=True)
        pool.hosts = all_hosts
    finally:
        pool.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
