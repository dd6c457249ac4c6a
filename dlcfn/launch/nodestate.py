"""Whether a cluster's nodes can run jobs: each node's bootstrap writes a node state file
("ready" once its framework is installed, "failed: <reason>" when a step before that failed;
absent while it boots). Read over SSH, on every node in parallel.

`submit --cluster` reads it once before shipping anything (JobRun); `update-stack` waits on it
after a resize, because workers that join a running cluster boot long after the stack's
WaitCondition, and a resize that returns before they can run jobs only moves the wait to the
first submit.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dlcfn.errors import DlcfnError
from dlcfn.progress import Progress, Update
from dlcfn.remote.runner import CommandRunner

if TYPE_CHECKING:
    from dlcfn.inventory import ClusterState

READY = "ready"
BOOTSTRAP_LOG = "/var/log/dlcfn-bootstrap.log"


@dataclass(frozen=True)
class NodeStates:
    path: str  # the file read
    ready: list[str] = field(default_factory=list)
    booting: list[str] = field(default_factory=list)  # no file yet
    failed: list[tuple[str, str]] = field(default_factory=list)  # (node, reason)

    def error(self, cluster: str) -> DlcfnError | None:
        """One error naming every node that cannot run jobs, failures first; None when all can."""
        if self.failed:
            what = "; ".join(f"{name} failed to boot ({reason})" for name, reason in self.failed)
            return DlcfnError(what, hint=f"see {BOOTSTRAP_LOG} there (`dlcfn ssh {cluster} --node NAME`); "
                              "replace the node, e.g. by resizing the cluster")
        if self.booting:
            return DlcfnError(f"{', '.join(self.booting)} still booting: no {self.path} saying ready yet (installing the "
                              "framework?); nothing was started", hint="submit again in a few minutes, or follow it with "
                              f"`dlcfn ssh {cluster} --node {self.booting[0]} -- tail -f {BOOTSTRAP_LOG}`")
        return None


def node_state_file(state: "ClusterState") -> str:
    """The file a cluster's nodes report in ("" when they do not): nodes that install their
    framework at boot (the bootstrap's venv); a worker added after the stack was created may still
    be installing it."""
    from dlcfn.node.userdata import FRAMEWORK_PYTHON, NODE_STATE_FILE

    return NODE_STATE_FILE if state.node_python == FRAMEWORK_PYTHON else ""


def read_node_states(runners: Sequence[CommandRunner], path: str) -> NodeStates:
    """Every runner's node state file, in parallel (under DLCFN_NODE_ROOT on local hosts)."""
    from dlcfn.remote.fanout import for_each

    cmd = f'cat "${{DLCFN_NODE_ROOT:-}}"{shlex.quote(path)} 2>/dev/null || echo booting'
    texts = for_each(list(runners), lambda r: r.run(cmd, timeout=30).stdout.decode(errors="replace").strip())
    states = NodeStates(path)
    for runner, text in zip(runners, texts):
        text = str(text)
        if text == READY:
            states.ready.append(runner.name)
        elif text.startswith("failed"):
            states.failed.append((runner.name, text.removeprefix("failed: ")))
        else:
            states.booting.append(runner.name)
    return states


def wait_until_ready(name: str, progress: Progress, *, timeout_s: float, refresh: Callable[[], object],
                     sleep: Callable[[float], None], monotonic: Callable[[], float], poll_s: float = 15.0) -> None:
    """Poll every node of cluster `name` until each says ready; raise at the first failed one or
    at the timeout. `refresh()` re-reads the inventory first (new nodes, their host keys); a node
    that cannot be reached yet (sshd not up, host key not in its console output yet) is booting."""
    from dlcfn.launch.targets import from_cluster
    from dlcfn.node.userdata import NODE_STATE_FILE
    from dlcfn.remote.fanout import close_all, connect_all

    from dlcfn.home import Home
    from dlcfn.inventory import load_state

    key = load_state(Home.from_env().state_file(name), name).ssh_key
    if not key or not Path(key).is_file():  # waiting would not help: say so and leave it to submit's check
        why = f"no SSH key at {key}" if key else "no SSH key recorded (create-stack --ssh-key)"
        progress.note(f"cluster {name}: not waiting for the nodes to report ready: {why}; `dlcfn submit` checks them")
        return
    deadline = monotonic() + timeout_s
    while True:
        refresh()
        try:
            targets = from_cluster(name)
            runners = connect_all([h.target for h in targets.hosts])
            try:
                states = read_node_states(runners, targets.node_state or NODE_STATE_FILE)
            finally:
                close_all(runners)
            waiting = f"booting: {', '.join(states.booting)}" if states.booting else ""
        except DlcfnError as e:
            states, waiting = None, f"not reachable yet ({e.message})"
        if states is not None:
            for node in states.ready:
                progress.update(Update(node, "node", READY))
            for node in states.booting:
                progress.update(Update(node, "node", "booting"))
            error = states.error(name)
            if error is None:
                progress.note(f"cluster {name}: every node is ready to run jobs")
                return
            if states.failed:
                raise error
        if monotonic() >= deadline:
            raise DlcfnError(f"cluster {name}: nodes not ready after {timeout_s:.0f} s ({waiting})",
                             hint=f"check again with `dlcfn status {name}`; `dlcfn submit` refuses nodes until they are ready")
        sleep(min(poll_s, max(deadline - monotonic(), 0.0)))
