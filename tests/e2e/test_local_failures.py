"""A local create whose WaitCondition gets FAILURE: the error names the node's reason, and the
create leaves nothing behind (no sshd, no moto server, no cluster directory)."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlcfn.errors import DlcfnError

from test_local_cluster import _processes_mentioning


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    base = Path.home() / ".cache" / "dlcfn-tests"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="e2e-fail-", dir=base))
    os.chmod(root, 0o700)
    for var in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(var)
    yield root
    for pid in _processes_mentioning(str(root)):  # only on a failed assertion: the create cleans up itself
        os.kill(pid, 9)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_worker_that_never_boots_fails_the_create_and_nothing_is_left(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcfn.home import Home
    from dlcfn.local import nodes
    from dlcfn.local.provider import make_provider
    from dlcfn.progress import Look, Progress
    from dlcfn.provider import CreateRequest, ProviderOptions
    from dlcfn.spec.cluster import cluster_spec_from_options

    real_run = nodes._run_node
    silent: list[str] = []

    def run_node(role: str, raw: dict[str, Any], node: Any, *args: Any) -> Any:
        if node.name == "worker-2":  # this instance never runs its UserData: no hello reaches the master
            silent.append(node.instance_id)
            return _NoBoot()
        return real_run(role, raw, node, *args)

    monkeypatch.setattr(nodes, "_run_node", run_node)
    monkeypatch.setattr(nodes, "DISCOVERY_TIMEOUT_S", 3.0)
    provider = make_provider(Home(home), ProviderOptions())
    spec = cluster_spec_from_options({"workers": "2"})
    with Progress("test", Look.PLAIN, stream=io.StringIO()) as progress, pytest.raises(DlcfnError) as failed:
        provider.create(CreateRequest(name="bad", spec=spec), progress)
    message = str(failed.value)
    assert "WaitCondition FAILURE" in message and silent and f"{silent[0]} sent no hello within 3 s" in message
    assert not _processes_mentioning(str(home))
    assert not (home / "clusters" / "bad").exists()


class _NoBoot:
    ok = True
    reason = ""
    members: list[Any] = []
