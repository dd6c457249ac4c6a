"""Running a job end to end: connect, ship, set up, start every rank, watch, fail fast, stop
everything, bring the results home, and record what happened.

The pipeline, one step per method:
  connect  every host in parallel (the jump host first), connections kept for the whole job;
           all host keys are checked before anything is shipped anywhere; on a cluster whose
           nodes install their framework at boot, every node must report itself ready
  start    per host, pipelined (no host waits for the others):
           prepare  in the first rank's session: job dirs, unpack the workdir, CPU count,
                    supervisor, scheduler port (host 0); the session then waits for its go line
           setup    the spec's setup commands
           open     one session per other rank, each waiting for a go line
           go       release the ranks (each under the remote watchdog: its own process group,
                    bound to its channel) once host 0's scheduler port is known
  watch    prefixed live output; the first non-zero exit, lost host or timeout ends the job
  stop     TERM then KILL every rank's process group on every host, then close the channels
  collect  result globs from every host, job.json, the history record, a summary
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from dlcfn.errors import DlcfnError, Interrupted
from dlcfn.launch import mxnet
from dlcfn.launch.history import JobRecord, JobState, JobStore, process_start_time
from dlcfn.launch.layout import JobLayout, PrepareStep, parse_prepared
from dlcfn.launch.nodestate import read_node_states
from dlcfn.launch.plan import HostSlot, Plan, Process, make_plan
from dlcfn.launch.results import Collected, collect, print_summary, process_rows, write_job_json
from dlcfn.launch.watch import Event, EventKind, RankHandle, watch
from dlcfn.remote.fanout import MAX_THREADS, close_all, connect_all, connected, for_each, start_liveness_all
from dlcfn.remote.ssh import EarlySockets, SshRunner
from dlcfn.remote.transfer import Archive, pack_dir
from dlcfn.spec.job import JobSpec

Echo = Callable[[str], None]
PREPARE_TIMEOUT = 300.0  # seconds for a host to unpack the workdir and report
LIVENESS_TIMEOUT = 6.0  # seconds without a reply to SSH pings before a host counts as gone


class Cancelled(Exception):
    """SIGTERM to the submitting process (what `dlcfn cancel` sends)."""


@dataclass
class SubmitOptions:
    job_id: str
    results_root: Path  # <cwd>/results
    store: JobStore
    echo: Echo
    shared_dir: str = ""  # hosts share this file system: ship the workdir once
    grace: float = 2.0  # seconds between TERM and KILL when stopping ranks
    node_state: str = ""  # file every host must hold "ready" in (Targets.node_state); "": no check
    cluster: str = ""  # the cluster's name, for hints


@dataclass
class Failure:
    state: JobState
    message: str
    detail: str = ""


@dataclass
class JobRun:
    spec: JobSpec
    hosts: list[HostSlot]
    opts: SubmitOptions
    early: EarlySockets | None = None  # TCP connections started while the CLI was checking input
    plan: Plan = field(init=False)
    layout: JobLayout = field(init=False)
    runners: list[SshRunner] = field(default_factory=list)  # index = plan host index
    ranks: list[RankHandle] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    record: JobRecord | None = None
    events: "queue.Queue[Event]" = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.plan = make_plan(self.spec, self.hosts, self.opts.job_id)
        self.layout = JobLayout(self.opts.job_id, self.opts.shared_dir)
        self.results_dir = self.opts.results_root / self.opts.job_id

    def execute(self) -> None:
        """Run the job; return on success, raise DlcfnError (1), Interrupted (130) otherwise."""
        with self._phase("connect"):
            used = [self.hosts[i].target for i in range(len(self.hosts)) if self.plan.on_host(i)]
            self.runners = connect_all(used, self.early)  # a UserInputError here: nothing was started or shipped
            try:
                self._check_nodes_ready()
            except BaseException:
                close_all(self.runners)
                raise
        start_liveness_all(self.runners)
        (self.results_dir / "logs").mkdir(parents=True, exist_ok=True)
        record = self.record = self._new_record()
        failure: Failure | None = None
        try:
            with _sigterm_raises(Cancelled):
                failure = self._run_steps()
        except KeyboardInterrupt:
            failure = Failure(JobState.INTERRUPTED, f"job {self.opts.job_id} interrupted (Ctrl-C)")
        except Cancelled:
            failure = Failure(JobState.CANCELLED, f"job {self.opts.job_id} cancelled (dlcfn cancel)")
        except DlcfnError as e:
            failure = Failure(JobState.FAILED, f"job {self.opts.job_id} failed: {e.message}", e.detail)
        finally:
            with _sigint_ignored():  # a second Ctrl-C must not cut the cleanup short
                stop_notes = self._stop()
            collected = self._collect()
            stop_notes += self._remove_job_dirs()
            close_all(self.runners)
            self._finish(record, failure, collected, stop_notes)
        if failure is not None:
            notes = "".join(f"\n  note: {n}" for n in stop_notes)
            err = Interrupted if failure.state is JobState.INTERRUPTED else DlcfnError
            raise err(failure.message, detail=failure.detail + notes)

    def _run_steps(self) -> Failure | None:
        with self._phase("start"):
            self._bring_up()
        with self._phase("run"):
            return self._watch()

    # --- steps --------------------------------------------------------------------------------

    def _check_nodes_ready(self) -> None:
        """Every host's node state file says ready (see SubmitOptions.node_state), or one error
        names each node that is still booting or failed to, before anything is shipped."""
        if self.opts.node_state:
            error = read_node_states(self.runners, self.opts.node_state).error(self.opts.cluster)
            if error is not None:
                raise error

    def _bring_up(self) -> None:
        """Per host, as soon as it can: open its first rank's session, which prepares the host
        (dirs, the workdir unpacked, CPU count, supervisor, on host 0 the scheduler's port) and
        then holds; run the setup commands; open the host's other ranks; release them all once
        the scheduler's port (host 0) is known. Hosts do not wait for each other, so a fast host
        does not idle behind a slow one; the first error stops them all."""
        archive = pack_dir(self.spec.workdir)
        host0_ready, abort = threading.Event(), threading.Event()
        errors: list[DlcfnError] = []

        def host(i: int) -> None:
            try:
                prepared = self._prepare_host(i, archive, abort)
                if prepared is None:
                    return
                cpus, supervisor = prepared
                if i == 0:
                    host0_ready.set()
                elif self.layout.shared_dir:  # host 0 unpacks the shared workdir: setup runs in it
                    self._wait(host0_ready, abort)
                if abort.is_set():
                    return
                self._setup_host(i)
                for proc in self.plan.on_host(i)[1:]:
                    if abort.is_set():
                        return
                    self._open_rank(i, proc, supervisor)
                if self._wait(host0_ready, abort):
                    self._go_host(i, cpus)
            except DlcfnError as e:
                errors.append(e)
                abort.set()

        pool = ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(self.runners)))
        try:
            list(pool.map(host, range(len(self.runners))))
        except BaseException:
            abort.set()  # Ctrl-C/cancel: the hosts' threads stop at their next step
            raise
        finally:
            pool.shutdown(wait=True)
            self.ranks.sort(key=lambda r: self.plan.processes.index(r.proc))
        if errors:
            raise errors[0]

    @staticmethod
    def _wait(event: threading.Event, abort: threading.Event) -> bool:
        """Wait for `event`; False when the bring-up was aborted first."""
        while not event.wait(0.05):
            if abort.is_set():
                return False
        return not abort.is_set()

    def _prepare_host(self, i: int, archive: Archive, abort: threading.Event) -> tuple[int, str] | None:
        """Open host i's first rank with its prepare step in front (the workdir streamed on its
        stdin, unpacked once on a shared file system) and wait for its report: (CPU count,
        supervisor); on host 0 also the scheduler's port. None when the bring-up was aborted."""
        unpack = not self.layout.shared_dir or i == 0
        step = PrepareStep(len(archive.data) if unpack else 0, archive.gzip, probe_port=(i == 0), python=self.spec.python,
                           simple=archive.simple)
        first = self._open_rank(i, self.plan.on_host(i)[0], "auto", step)
        if unpack:
            first.remote.send(archive.data)
        deadline = time.monotonic() + PREPARE_TIMEOUT
        while not first.settled.wait(0.05):  # the report, or the session's end
            if abort.is_set():
                return None
            if time.monotonic() > deadline:
                raise DlcfnError(f"host {self.runners[i].name}: preparing the job dir took over {PREPARE_TIMEOUT:.0f} s")
        prepared = parse_prepared(first.prepared or "", probe_port=(i == 0))
        if prepared is None:  # the session ended (its output and exit status say why) or reported nonsense
            detail = "\n".join([*first.tail, *([f"report: {first.prepared}"] if first.prepared is not None else [])])
            why = f"exit {first.status}" if first.status is not None else "unreadable report"
            raise DlcfnError(f"host {self.runners[i].name}: preparing the job dir failed ({why})", detail=detail)
        if i == 0 and self.spec.kvstore.distributed:
            self.plan.root_port = prepared.port or 0
        return prepared.cpus, prepared.supervisor

    def _setup_host(self, i: int) -> None:
        runner = self.runners[i]
        env = {**self.spec.env, "DLCFN_JOB_ID": self.opts.job_id}
        for command in self.spec.setup:
            echo = _line_printer(self.opts.echo, f"[setup@{runner.name}] ")
            r = runner.run(self.layout.setup(command), env=env, timeout=self.spec.timeout or None, stream=echo)
            if not r.ok:
                raise DlcfnError(f"setup command {command!r} failed on host {runner.name} with exit {r.exit_status}", detail=r.tail())

    def _open_rank(self, i: int, proc: Process, supervisor: str, prepare: PrepareStep | None = None) -> RankHandle:
        """Open one rank's session on host i; it waits for its go line (JobLayout.rank)."""
        argv, late = mxnet.command(self.spec), mxnet.late_env(self.spec)
        env = mxnet.process_env(self.spec, self.plan, proc, None)
        cmd = self.layout.rank(self.spec.python, proc.name, argv, self.opts.grace, late, supervisor, prepare)
        remote = self.runners[i].start(cmd, env={k: v for k, v in env.items() if k not in late})
        handle = RankHandle(proc, self.runners[i].name, remote, self.results_dir / "logs" / f"{proc.name}.log")
        with self._lock:
            self.ranks.append(handle)
        watch(handle, self.events)
        return handle

    def _go_host(self, i: int, cpus: int) -> None:
        """Release host i's waiting ranks with the values only known now (port, CPU count)."""
        late = mxnet.late_env(self.spec)
        with self._lock:
            mine = [r for r in self.ranks if r.proc.host == i]
        for rank in mine:
            rank.proc.env = mxnet.process_env(self.spec, self.plan, rank.proc, cpus)
            rank.started_at = time.time()
            rank.remote.send((" ".join(rank.proc.env[k] for k in late) or "go").encode() + b"\n")

    def _watch(self) -> Failure | None:
        deadline = time.monotonic() + self.spec.timeout if self.spec.timeout else None
        remaining = len(self.ranks)
        recorded = False
        while remaining:
            if not recorded and all(r.pgid for r in self.ranks):
                recorded = self._record_pgids()
            if deadline is not None and time.monotonic() > deadline:
                return Failure(JobState.TIMED_OUT, f"job {self.opts.job_id} timed out after {self.spec.timeout} s (timeout in the job spec)")
            silent = self._silent_hosts()
            if silent:
                names = ", ".join(r.name for r in silent)
                return Failure(JobState.FAILED, f"job {self.opts.job_id} failed: host {names} stopped answering "
                               f"(no SSH reply for {LIVENESS_TIMEOUT:.0f} s); stopped every process on the other hosts")
            try:
                ev = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if ev.kind is EventKind.LINE:
                self.opts.echo(f"[{ev.rank.label}] {ev.text}")
                continue
            remaining -= 1
            if ev.rank.status != 0:
                r = ev.rank
                detail = "\n".join(f"  | {line}" for line in r.tail)
                return Failure(JobState.FAILED, f"job {self.opts.job_id} failed: {r.proc.name} on host {r.host_name} {r.describe_exit()}; "
                               f"stopped every other process (log: {_rel(r.log_path)})", detail)
        return None

    def _stop(self) -> list[str]:
        """Stop every rank still running: kill their process groups on each host (TERM, KILL
        after the grace period, wait until gone), then close the channels, which would make
        each watchdog do the same if the explicit kill could not reach its host."""
        t0 = time.monotonic()
        for rank in self.ranks:
            rank.stopped = not rank.done
        live = self._live_hosts()
        notes = [f"host {r.name} is not answering: its processes stop when their SSH channels close (remote watchdog)"
                 for r in self._silent_hosts()]

        def one(i: int) -> None:
            try:
                r = self.runners[i].run(self.layout.kill(self.opts.grace), timeout=self.opts.grace + 10)
                if not r.ok:
                    notes.append(f"host {self.runners[i].name}: some processes did not stop (exit {r.exit_status})")
            except DlcfnError as e:
                notes.append(f"{e.message}; its processes stop by themselves when their SSH channel closes")

        for_each(live, one)
        for rank in self.ranks:
            rank.remote.close()
        deadline = time.monotonic() + 2.0
        while any(not r.done for r in self.ranks) and time.monotonic() < deadline:
            time.sleep(0.01)
        if live:
            self.timings["stop"] = time.monotonic() - t0
        return notes

    def _remove_job_dirs(self) -> list[str]:
        """After collect: every reachable host's job dir goes (the shared workdir once)."""
        notes: list[str] = []
        silent = self._silent_hosts()

        def one(i: int) -> None:
            runner = self.runners[i]
            if runner in silent or not connected(runner):
                notes.append(f"host {runner.name}: job dir left in place (host not answering)")
                return
            try:
                r = runner.run(self.layout.remove(shared_too=(i == 0)), timeout=60)
                if not r.ok:
                    notes.append(f"host {runner.name}: removing the job dir failed (exit {r.exit_status}): {r.tail(1)}")
            except DlcfnError as e:
                notes.append(f"host {runner.name}: job dir left in place ({e.message})")

        for_each(list(range(len(self.runners))), one)
        return notes

    def _live_hosts(self) -> list[int]:
        """Hosts that may still run a rank (all of them when the job stopped while starting),
        less those that stopped answering: a command there would hang."""
        silent = {r.name for r in self._silent_hosts()}
        if len(self.ranks) < len(self.plan.processes):
            return [i for i, r in enumerate(self.runners) if r.name not in silent]
        index = {r.name: i for i, r in enumerate(self.runners)}
        return sorted({index[r.host_name] for r in self.ranks if not r.done and r.host_name not in silent})

    def _silent_hosts(self) -> list[SshRunner]:
        return [r for r in self.runners if r.silent_for() > LIVENESS_TIMEOUT]

    def _collect(self) -> Collected:
        with self._phase("collect"):
            silent = self._silent_hosts()
            live = [r for r in self.runners if connected(r) and r not in silent]
            return collect(live, self.layout, self.spec.results, self.results_dir)

    # --- records --------------------------------------------------------------------------------

    def _new_record(self) -> JobRecord:
        record = JobRecord(
            job_id=self.opts.job_id, name=self.spec.name, state=JobState.RUNNING, submitted_at=time.time() - sum(self.timings.values()),
            results_dir=str(self.results_dir.resolve()), controller_pid=os.getpid(),
            controller_started=process_start_time(os.getpid()), shared_dir=self.opts.shared_dir,
            hosts=[h.target.to_dict() for i, h in enumerate(self.hosts) if self.plan.on_host(i)],
        )
        self.opts.store.save(record)
        return record

    def _record_pgids(self) -> bool:
        """Every rank's process group in the history record, for `dlcfn cancel` and post mortems."""
        assert self.record is not None
        self.record.processes = process_rows(self.ranks)
        self.opts.store.save(self.record)
        return True

    def _finish(self, record: JobRecord, failure: Failure | None, collected: Collected, notes: list[str]) -> None:
        state = failure.state if failure else JobState.SUCCEEDED
        record.state, record.ended_at = state, time.time()
        record.message = failure.message if failure else ""
        record.processes = process_rows(self.ranks)
        write_job_json(self.results_dir / "job.json", job_id=self.opts.job_id, state=state.value, message=record.message,
                       spec=self.spec.to_dict(), plan=self.plan.to_dict(), timings=self.timings,
                       processes=record.processes, results=collected.files, notes=notes + collected.notes)
        self.opts.store.save(record)
        print_summary(self.opts.echo, self.opts.job_id, state.value, self.timings, self.ranks, self.results_dir, collected)

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = time.monotonic() - t0


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigterm_raises(exc: type[BaseException]) -> Iterator[None]:
    """While running, SIGTERM (from `dlcfn cancel`) unwinds like Ctrl-C, through the cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise exc()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _line_printer(echo: Echo, prefix: str) -> Callable[[bytes], None]:
    pending = bytearray()

    def feed(chunk: bytes) -> None:
        pending.extend(chunk)
        *lines, rest = bytes(pending).split(b"\n")
        pending[:] = rest
        for line in lines:
            echo(prefix + line.decode(errors="replace"))

    return feed


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
