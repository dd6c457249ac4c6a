"""The provider seam: what a cluster backend does, so that the CLI runs the same code whether the
cluster lives on AWS (dlcfn.aws.provider) or on this machine (dlcfn.local.provider, the embedded
moto + local SSH hosts cluster).

A provider module exposes `make_provider(home: Home, options: ProviderOptions) -> ClusterProvider`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlcfn.errors import DlcfnError
from dlcfn.home import Home
from dlcfn.inventory import ClusterState
from dlcfn.progress import Progress

AWS_PROVIDER = "dlcfn.aws.provider"
LOCAL_PROVIDER = "dlcfn.local.provider"


@dataclass(frozen=True)
class ProviderOptions:
    profile: str | None = None
    region: str | None = None
    target: str = "auto"  # template variant: "aws", "moto", or "auto" (moto when AWS_ENDPOINT_URL is set)


@dataclass
class CreateRequest:
    name: str
    spec: Any  # dlcfn.spec.cluster.ClusterSpec (validated)
    wait: bool = True
    timeout_s: float = 3600.0
    rollback: bool = True
    ssh_key: str = ""  # the private key matching the spec's key pair


@dataclass
class UpdateRequest:
    name: str
    options: dict[str, Any]  # the spec options to change (e.g. {"workers": 4})
    timeout_s: float = 3600.0
    confirm: Any = None  # callable(summary_lines: list[str]) -> bool; None applies without asking


@dataclass
class DeleteReport:
    existed: bool
    leftovers: list[Any] = field(default_factory=list)  # dlcfn.aws.sweep.Leftover or the provider's own


@dataclass
class ClusterSummary:
    name: str
    status: str
    region: str
    created: str = ""
    workers: str = ""


class ClusterProvider(Protocol):
    def create(self, request: CreateRequest, progress: Progress) -> ClusterState: ...

    def exists(self, name: str) -> bool: ...

    def status(self, name: str) -> ClusterState: ...

    def update(self, request: UpdateRequest, progress: Progress) -> ClusterState: ...

    def delete(self, name: str, progress: Progress, *, purge_efs: bool = False) -> DeleteReport: ...

    def list(self) -> list[ClusterSummary]: ...


def load_provider(local: bool, home: Home, options: ProviderOptions) -> ClusterProvider:
    """The AWS provider, or with `local` the embedded one (a clear error until it is installed)."""
    module_name = LOCAL_PROVIDER if local else AWS_PROVIDER
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if not local or e.name not in (module_name, module_name.rpartition(".")[0]):
            raise
        raise DlcfnError(f"--local: the local provider is not available in this dlcfn build ({module_name} is missing)", hint="run without --local to use AWS") from e
    provider: ClusterProvider = module.make_provider(home, options)
    return provider
