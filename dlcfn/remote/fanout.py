"""Doing one thing on many hosts at once: open every connection in parallel (jump hosts first),
run a command per host in parallel, and report every host that failed, not just the first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dlcfn.errors import DlcfnError
from dlcfn.remote.hosts import SshTarget, read_known_hosts
from dlcfn.remote.ssh import LIVENESS_INTERVAL, EarlySockets, SshRunner, load_key

T = TypeVar("T")
MAX_THREADS = 64  # handshakes are mostly waiting on the network and the peers' CPU


def connect_all(targets: Sequence[SshTarget], early: EarlySockets | None = None) -> list[SshRunner]:
    """One connected runner per target, in order, on the `early` sockets where there are some.
    On any failure every opened connection is closed and one error names every host that failed
    (the first error's type is kept, so a host-key problem stays a user-input error)."""
    everything = [*targets, *{t.jump for t in targets if t.jump}]
    keys = {path: load_key(path) for path in {t.key_file for t in everything if t}}
    known = {path: read_known_hosts(path) for path in {t.known_hosts for t in everything if t}}

    def runner(t: SshTarget, jump: SshRunner | None = None) -> SshRunner:
        return SshRunner(t, keys[t.key_file], jump=jump, host_keys=known[t.known_hosts], early=early)

    jumps: dict[SshTarget, SshRunner] = {}
    for t in targets:
        if t.jump is not None and t.jump not in jumps:
            jumps[t.jump] = runner(t.jump)
    runners = []
    for t in targets:
        # A target that is itself the jump host reuses the jump's connection.
        runners.append(jumps.get(t) or runner(t, jumps.get(t.jump) if t.jump else None))
    try:
        for_each(list(jumps.values()), lambda r: r.connect())
        for_each(runners, lambda r: r.connect())
    except BaseException:
        close_all([*runners, *jumps.values()])
        raise
    finally:
        if early is not None:
            early.close()  # the sockets of hosts the job does not use
    return runners


def for_each(items: Sequence[T], fn: Callable[[T], object]) -> list[object]:
    """fn(item) for every item in parallel; results in order. Raises after all have finished,
    with every failure's message joined into one error of the first failure's type."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        results, errors = [], []
        for f in futures:
            try:
                results.append(f.result())
            except DlcfnError as e:
                errors.append(e)
    if errors:
        first = errors[0]
        if len(errors) == 1:
            raise first
        err = type(first)(first.message, detail="\n".join(e.message for e in errors[1:]))
        raise err from first
    return results


def start_liveness_all(runners: Sequence[SshRunner]) -> None:
    """Watch every host's liveness (SshRunner.start_liveness) from now on. Silence counts from
    now; the per-host ping threads are started by one timer thread after the first interval, not
    here: a job's start, when every host has just connected and proved itself alive, is the
    worst moment for dozens of thread starts and pings, and a short job never needs them."""
    for r in runners:
        r.watch_liveness()

    def later() -> None:
        for r in runners:
            if connected(r):
                r.start_liveness()

    timer = threading.Timer(LIVENESS_INTERVAL, later)
    timer.daemon = True  # a job shorter than the interval must not keep the CLI waiting for it
    timer.start()


def connected(runner: SshRunner) -> bool:
    """The runner's connection is up (it is not reopened when it is not)."""
    try:
        runner.transport()
        return True
    except DlcfnError:
        return False


def close_all(runners: Sequence[SshRunner]) -> None:
    seen = set()
    for r in runners:
        if id(r) not in seen:
            seen.add(id(r))
            r.close()
