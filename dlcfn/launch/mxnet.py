"""The MXNet engine: the environment contract of MXNet's kvstore (ps-lite), as `tools/launch.py`
sets it, so that a script written for the classic launcher runs unchanged, plus dlcfn's own
DLCFN_* variables (job id, process name, rank) that scripts and cleanup rely on."""

from __future__ import annotations

from dlcfn.launch.plan import Plan, Process, Role
from dlcfn.spec.job import JobSpec


def process_env(spec: JobSpec, plan: Plan, proc: Process, host_cpus: int | None) -> dict[str, str]:
    """The complete environment of one process. Order matters for the shell export: defaults
    first, then the user's `env`, then the contract (which the spec forbids overriding)."""
    env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}  # live logs: Python buffers a pipe otherwise
    env["OMP_NUM_THREADS"] = str(omp_threads(spec, plan, proc, host_cpus))
    env.update(spec.env)
    env.update({
        "DLCFN_JOB_ID": plan.job_id,
        "DLCFN_PROCESS": proc.name,
        "DLCFN_ROLE": proc.role.value,
        "DLCFN_RANK": str(proc.rank),
        "DLCFN_KVSTORE": spec.kvstore.value,
        "DLCFN_NUM_WORKERS": str(spec.num_workers),
        "DMLC_ROLE": proc.role.value,
        "DMLC_NUM_WORKER": str(spec.num_workers),
        "DMLC_NUM_SERVER": str(spec.num_servers),
        "DMLC_NODE_HOST": plan.hosts[proc.host].address,  # else ps-lite picks the first non-loopback NIC
        "DMLC_TASK_ID": str(proc.rank),
    })
    if spec.kvstore.distributed:
        env["DMLC_PS_ROOT_URI"] = plan.hosts[0].address  # numeric: ps-lite cannot bind "localhost"
        env["DMLC_PS_ROOT_PORT"] = str(plan.root_port)
    if proc.role is Role.WORKER and spec.gpus_per_worker:
        env.update(gpu_env(spec, plan, proc))
    return env


def late_env(spec: JobSpec) -> list[str]:
    """Variables whose values are known only after the hosts are prepared (see JobLayout.rank)."""
    late = ["DMLC_PS_ROOT_PORT"] if spec.kvstore.distributed else []
    return late + ([] if "OMP_NUM_THREADS" in spec.env else ["OMP_NUM_THREADS"])


def omp_threads(spec: JobSpec, plan: Plan, proc: Process, host_cpus: int | None) -> int:
    """`omp_threads` when set, else the host's CPUs shared by the job's compute processes on it
    (the scheduler only routes messages). Unset, OpenMP would start one thread per CPU in every
    process, and N processes per host would fight over the cores."""
    if spec.omp_threads:
        return spec.omp_threads
    busy = [p for p in plan.on_host(proc.host) if p.role is not Role.SCHEDULER] or [proc]
    return max(1, (host_cpus or 1) // len(busy))


def gpu_env(spec: JobSpec, plan: Plan, proc: Process) -> dict[str, str]:
    """Workers sharing a host get disjoint GPUs: the k-th worker on a host gets GPUs k*g..k*g+g-1."""
    peers = [p for p in plan.on_host(proc.host) if p.role is Role.WORKER]
    k = peers.index(proc)
    g = spec.gpus_per_worker
    devices = ",".join(str(i) for i in range(k * g, k * g + g))
    return {"CUDA_VISIBLE_DEVICES": devices, "DLCFN_GPUS": str(g)}


def command(spec: JobSpec) -> list[str]:
    """argv of every process: the same script for every role, as with tools/launch.py (MXNet's
    `import mxnet` turns a server or scheduler process into its kvstore loop)."""
    return [spec.python, spec.script, *spec.args]
