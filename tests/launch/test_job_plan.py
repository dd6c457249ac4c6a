"""Placement and the MXNet environment contract (pure: no hosts needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcfn.launch import mxnet
from dlcfn.launch.layout import JobLayout
from dlcfn.launch.plan import HostSlot, make_plan
from dlcfn.remote.hosts import SshTarget
from dlcfn.spec.job import JobSpec, KVStore


def slots(n: int) -> list[HostSlot]:
    return [HostSlot(SshTarget(f"h{i}", f"10.0.0.{i}"), f"10.0.0.{i}") for i in range(n)]


def spec(**kw: object) -> JobSpec:
    return JobSpec(name="j", script="train.py", workdir=Path("/w"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers,servers,hosts,expected", [
    (2, 1, 3, {"scheduler-0": 0, "worker-0": 0, "worker-1": 1, "server-0": 2}),
    (4, 2, 2, {"scheduler-0": 0, "worker-0": 0, "worker-1": 1, "worker-2": 0, "worker-3": 1, "server-0": 0, "server-1": 1}),
    (1, 1, 4, {"scheduler-0": 0, "worker-0": 0, "server-0": 1}),
    (3, 3, 1, {"scheduler-0": 0, **{f"worker-{i}": 0 for i in range(3)}, **{f"server-{i}": 0 for i in range(3)}}),
])
def test_placement(workers: int, servers: int, hosts: int, expected: dict[str, int]) -> None:
    plan = make_plan(spec(num_workers=workers, num_servers=servers), slots(hosts), "j-1")
    assert {p.name: p.host for p in plan.processes} == expected


def test_local_kvstore_is_one_process() -> None:
    plan = make_plan(spec(num_workers=1, num_servers=0, kvstore=KVStore.LOCAL), slots(2), "j-1")
    assert [p.name for p in plan.processes] == ["worker-0"]
    env = mxnet.process_env(plan_spec := spec(kvstore=KVStore.LOCAL, num_servers=0), plan, plan.processes[0], 4)
    assert "DMLC_PS_ROOT_URI" not in env and env["DLCFN_KVSTORE"] == plan_spec.kvstore.value


def test_env_contract_and_omp_and_gpus() -> None:
    s = spec(num_workers=2, num_servers=1, gpus_per_worker=2, env={"OMP_NUM_THREADS": "3", "X": "a b"})
    plan = make_plan(s, slots(1), "j-1")
    plan.root_port = 9091
    w1 = next(p for p in plan.processes if p.name == "worker-1")
    env = mxnet.process_env(s, plan, w1, 8)
    assert env["DMLC_ROLE"] == "worker" and env["DMLC_PS_ROOT_URI"] == "10.0.0.0" and env["DMLC_PS_ROOT_PORT"] == "9091"
    assert env["DMLC_NUM_WORKER"] == "2" and env["DMLC_NUM_SERVER"] == "1" and env["DMLC_NODE_HOST"] == "10.0.0.0"
    assert env["DLCFN_RANK"] == "1" and env["DLCFN_JOB_ID"] == "j-1"
    assert env["OMP_NUM_THREADS"] == "3"  # the user's choice wins over auto
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"  # second worker on the host: the next two GPUs
    auto = mxnet.process_env(spec(num_workers=2, num_servers=1), plan, w1, 8)
    assert auto["OMP_NUM_THREADS"] == "2"  # 8 CPUs / (2 workers + 1 server); the scheduler does not count


def test_layout_paths_use_node_root() -> None:
    layout = JobLayout("j-1")
    assert layout.work == '"${DLCFN_NODE_ROOT:-$HOME}/.dlcfn/jobs/j-1/work"'
    assert JobLayout("j-1", shared_dir="/efs").work == "/efs/.dlcfn/jobs/j-1/work"
