"""`dlcfn submit`, `jobs`, `logs`, `cancel`: parse, call dlcfn.launch, render. Heavy imports
(paramiko via dlcfn.remote) happen inside the commands that need them."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import click

from dlcfn.errors import UserInputError

JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _echo(line: str) -> None:
    click.echo(line)


def _store():  # type: ignore[no-untyped-def]
    from dlcfn.home import Home
    from dlcfn.launch.history import JobStore

    return JobStore(Home.from_env().jobs_dir)


@click.command()
@click.argument("job_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--cluster", metavar="NAME", help="Run on this cluster's nodes (master first, as jump host).")
@click.option("--hosts", "hosts_file", type=click.Path(path_type=Path), help="Hosts file: one [user@]host[:port] per line.")
@click.option("--ssh-key", type=click.Path(path_type=Path), help="Private key for --hosts.")
@click.option("--known-hosts", type=click.Path(path_type=Path), help="known_hosts file with every host's key, for --hosts.")
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; start nothing.")
@click.option("--job-id", help="Job id (default: <name>-<date>-<time>-<random>).")
def submit(job_file: Path, cluster: str | None, hosts_file: Path | None, ssh_key: Path | None,
           known_hosts: Path | None, dry_run: bool, job_id: str | None) -> None:
    """Run a training job (job.yaml) on a cluster or a hosts file; results go to ./results/<job-id>/."""
    from dlcfn.launch import targets as targets_mod
    from dlcfn.spec.job import load_job

    spec = load_job(job_file)
    if cluster is not None and hosts_file is not None:
        raise UserInputError("--cluster and --hosts both given; run on one of them")
    if cluster is None and hosts_file is None:
        raise UserInputError("say where to run: --cluster NAME or --hosts FILE (with --ssh-key and --known-hosts)")
    if cluster is not None and (ssh_key or known_hosts):
        raise UserInputError("--ssh-key/--known-hosts go with --hosts; a cluster's keys come from its inventory")
    store = _store()
    job_id = _job_id(job_id, spec.name, store)
    early = not dry_run  # a dry run touches no host
    targets = (targets_mod.from_cluster(cluster, early) if cluster
               else targets_mod.from_hosts_file(hosts_file, ssh_key, known_hosts, early))  # type: ignore[arg-type]
    try:
        _submit(spec, targets, dry_run, job_id, store)
    finally:
        targets.close()  # the early TCP connections nobody took (dry run, bad input, unused hosts)


def _submit(spec, targets, dry_run: bool, job_id: str, store) -> None:  # type: ignore[no-untyped-def]
    from dlcfn.launch import targets as targets_mod
    from dlcfn.launch.plan import make_plan
    from dlcfn.launch.run import JobRun, SubmitOptions

    spec = spec.with_python(targets.python)
    plan = make_plan(spec, targets.hosts, job_id)
    workers = {}
    for p in plan.processes:
        if p.role.value == "worker":
            workers[p.host] = workers.get(p.host, 0) + 1
    targets_mod.check_gpus(targets, spec.gpus_per_worker, workers)
    if dry_run:
        _print_plan(spec, plan, targets.origin)
        return
    opts = SubmitOptions(job_id=job_id, results_root=Path.cwd() / "results", store=store, echo=_echo, shared_dir=targets.shared_dir,
                         node_state=targets.node_state, cluster=targets.cluster)
    click.echo(f"job {job_id}: {len(plan.processes)} processes on {len(plan.used_hosts)} hosts of {targets.origin}")
    JobRun(spec, targets.hosts, opts, early=targets.early).execute()


def _job_id(requested: str | None, name: str, store) -> str:  # type: ignore[no-untyped-def]
    if requested is None:
        return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not JOB_ID_RE.match(requested):
        raise UserInputError(f"--job-id: {requested!r} must be letters, digits, '.', '_' or '-' (up to 128), starting with a letter or digit")
    if store.exists(requested):
        raise UserInputError(f"--job-id: job {requested!r} exists already; pick another id (see `dlcfn jobs`)")
    return requested


def _print_plan(spec, plan, origin: str) -> None:  # type: ignore[no-untyped-def]
    from dlcfn.launch.layout import JobLayout
    from dlcfn.launch.mxnet import command

    click.echo(f"plan for job {plan.job_id} ({spec.name}): {len(plan.processes)} processes on {len(plan.used_hosts)} hosts of {origin}")
    click.echo(f"  kvstore {spec.kvstore.value}, workers {spec.num_workers}, servers {spec.num_servers}, timeout {spec.timeout or 'none'}")
    root = plan.hosts[0]
    if spec.kvstore.distributed:
        click.echo(f"  DMLC_PS_ROOT_URI={root.address} DMLC_PS_ROOT_PORT=<a free port on {root.name}, picked at start>")
    for p in plan.processes:
        h = plan.hosts[p.host]
        click.echo(f"  {p.name:<14} on {h.name} (DMLC_NODE_HOST={h.address})")
    why = "the job's python" if spec.python_given else ("the cluster's node python" if spec.python != "python3" else "default")
    click.echo(f"  python {spec.python} ({why})")
    click.echo(f"  command: {' '.join(command(spec))}  (in {JobLayout(plan.job_id).work.strip(chr(34))})")
    click.echo("dry run: nothing was started")


@click.command()
def jobs() -> None:
    """List submitted jobs with state and duration."""
    from dlcfn.launch.cancel import controller_alive

    records = _store().all()
    if not records:
        click.echo("no jobs yet; run one with `dlcfn submit job.yaml`")
        return
    click.echo(f"{'JOB':<44} {'STATE':<12} {'DURATION':>9}  {'STARTED':<19}  PROCESSES")
    for r in records:
        state = r.state.value
        if not r.state.finished and not controller_alive(r):
            state = "lost"  # the submit process died without recording an end
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.submitted_at))
        click.echo(f"{r.job_id:<44} {state:<12} {r.duration:>8.1f}s  {started:<19}  {len(r.processes) or '-'}")


@click.command()
@click.argument("job_id")
@click.argument("process", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends.")
def logs(job_id: str, process: str | None, follow: bool) -> None:
    """Show the logs of a job (all processes, prefixed, or one PROCESS such as worker-0)."""
    from dlcfn.launch.logs import show_logs

    show_logs(_store(), job_id, process, follow, _echo)


@click.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Stop a running job on every host."""
    from dlcfn.launch.cancel import cancel_job

    cancel_job(_store(), job_id, _echo)
