"""Real MXNet jobs across 3 sshd hosts: dist_sync (1 scheduler + 1 server + 2 workers) and dist_async (2 servers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def kv_job(ssh_pool_factory, write_job, run_submit, job_pids, in_tmp_cwd: Path):  # type: ignore[no-untyped-def]
    """Run tests/data/jobs/kvsum/<script> on 3 hosts with 2 workers; returns (pool, CLI output,
    results dir, each worker's out/worker-<rank>.json), after checking it succeeded and left
    no process behind."""

    def run(script: str, job_id: str, **fields: object):  # type: ignore[no-untyped-def]
        pool = ssh_pool_factory(3)
        job = write_job("kvsum", script=script, num_workers=2, timeout=120, results=["out/*.json"],
                        env={"OMP_NUM_THREADS": 1}, **fields)
        out = run_submit(pool, job, "--job-id", job_id)
        assert out.returncode == 0, out.stdout + out.stderr
        assert not job_pids(job_id)
        results = in_tmp_cwd / "results" / job_id
        reports = [json.loads(p.read_text()) for p in sorted(results.glob("*/out/worker-*.json"))]
        assert len(reports) == 2 and all(r["num_workers"] == 2 for r in reports)
        return pool, out, results, reports

    return run


@pytest.mark.slow
def test_dist_sync_sum_across_three_hosts(kv_job) -> None:  # type: ignore[no-untyped-def]
    pool, out, results, reports = kv_job("push_sum.py", "kvsum-1", num_servers=1, kvstore="dist_sync")
    record = json.loads((results / "job.json").read_text())
    hosts = {p["name"]: p["host"] for p in record["processes"]}
    # scheduler on the first host, workers spread first, the server on the least loaded host
    names = [h.spec.split("@")[1] for h in pool.hosts]
    assert hosts == {"scheduler-0": names[0], "worker-0": names[0], "worker-1": names[1], "server-0": names[2]}
    assert {p["exit"] for p in record["processes"]} == {0}
    for got in reports:
        assert got["sum"] == [[3.0] * 5] * 4  # (0 + 1) + (1 + 1) from the two workers
    assert "[worker-1@" in out.stdout and "pulled 3.0" in out.stdout
    assert (results / "logs" / "worker-0.log").read_text().count("pulled 3.0") == 1


@pytest.mark.slow
def test_dist_async_updates_on_the_servers(kv_job) -> None:  # type: ignore[no-untyped-def]
    """dist_async across 3 hosts with 2 servers: the servers run the optimizer on each push as it
    comes (no per-step aggregation); after a barrier every worker reads both updates."""
    _, _, _, reports = kv_job("push_async.py", "kvasync-1", num_servers=2, kvstore="dist_async")
    for got in reports:
        assert got["weight"] == [[-3.0] * 5] * 4  # 0 - 1 * (0 + 1) - 1 * (1 + 1): both pushes applied once
