"""Real MXNet jobs across 3 sshd hosts: dist_sync (1 scheduler + 1 server + 2 workers) and dist_async (2 servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_dist_sync_sum_across_three_hosts(ssh_pool_factory, write_job, run_submit, job_pids, in_tmp_cwd: Path) -> None:  # type: ignore[no-untyped-def]
    pool = ssh_pool_factory(3)
    job = write_job("kvsum", script="push_sum.py", num_workers=2, num_servers=1, kvstore="dist_sync",
                    timeout=120, results=["out/*.json"], env={"OMP_NUM_THREADS": 1})
    out = run_submit(pool, job, "--job-id", "kvsum-1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not job_pids("kvsum-1")
    results = in_tmp_cwd / "results" / "kvsum-1"
    record = json.loads((results / "job.json").read_text())
    hosts = {p["name"]: p["host"] for p in record["processes"]}
    # scheduler on the first host, workers spread first, the server on the least loaded host
    names = [h.spec.split("@")[1] for h in pool.hosts]
    assert hosts == {"scheduler-0": names[0], "worker-0": names[0], "worker-1": names[1], "server-0": names[2]}
    assert {p["exit"] for p in record["processes"]} == {0}
    collected = sorted(results.glob("*/out/worker-*.json"))
    assert len(collected) == 2
    for path in collected:
        got = json.loads(path.read_text())
        assert got["num_workers"] == 2
        assert got["sum"] == [[3.0] * 5] * 4  # (0 + 1) + (1 + 1) from the two workers
    assert "[worker-1@" in out.stdout and "pulled 3.0" in out.stdout
    assert (results / "logs" / "worker-0.log").read_text().count("pulled 3.0") == 1


@pytest.mark.slow
def test_dist_async_updates_on_the_servers(ssh_pool_factory, write_job, run_submit, job_pids, in_tmp_cwd: Path) -> None:  # type: ignore[no-untyped-def]
    """dist_async across 3 hosts with 2 servers: the servers run the optimizer on each push as it
    comes (no per-step aggregation); after a barrier every worker reads both updates."""
    pool = ssh_pool_factory(3)
    job = write_job("kvsum", script="push_async.py", num_workers=2, num_servers=2, kvstore="dist_async",
                    timeout=120, results=["out/*.json"], env={"OMP_NUM_THREADS": 1})
    out = run_submit(pool, job, "--job-id", "kvasync-1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not job_pids("kvasync-1")
    results = in_tmp_cwd / "results" / "kvasync-1"
    collected = sorted(results.glob("*/out/worker-*.json"))
    assert len(collected) == 2
    for path in collected:
        got = json.loads(path.read_text())
        assert got["num_workers"] == 2
        assert got["weight"] == [[-3.0] * 5] * 4  # 0 - 1 * (0 + 1) - 1 * (1 + 1): both pushes applied once
