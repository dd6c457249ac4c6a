"""The embedded local cluster provider (`--local`): the real stack in a moto server on 127.0.0.1,
each instance it launches standing in as a local sshd host.

Create: start the cluster's moto server (dlcfn.local.moto_server, state in the cluster's
directory) -> deploy the stack through the AWS provider at that endpoint (same template variant
as every moto run, same progress view) -> one local host (dlcfn.local.cluster) per instance the
master and the worker group run -> the inventory, with each node's address and port being its
host's, a shared directory standing in for EFS. Update resizes the worker group the same way and
then starts or stops hosts to match it; delete removes the stack, every host and the server.
"""

from __future__ import annotations

import getpass
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dlcfn.errors import DlcfnError
from dlcfn.home import Home
from dlcfn.inventory import ClusterState, load_state, save_state
from dlcfn.local import moto_server
from dlcfn.local.cluster import LocalHosts
from dlcfn.progress import Progress, Update
from dlcfn.provider import ClusterSummary, CreateRequest, DeleteReport, ProviderOptions, UpdateRequest

DEFAULT_REGION = "us-east-1"
MOTO_DIR = "moto"
HOSTS_DIR = "hosts"
SHARED_DIR = "shared"
LOCAL_SSH_CIDR = "127.0.0.0/8"


def make_provider(home: Home, options: ProviderOptions) -> "LocalProvider":
    return LocalProvider(home=home, region=options.region or DEFAULT_REGION)


def _local_spec(spec: Any) -> Any:
    """The spec with the local defaults: SSH is open to loopback only (the hosts' addresses).
    Framework lists are refused (the CLI refuses them first): the hosts run this machine's Python."""
    from dlcfn.errors import ValidationFailed
    from dlcfn.spec.cluster import rule_local_installs_nothing

    findings = rule_local_installs_nothing(spec)
    if findings:
        raise ValidationFailed(findings)
    return replace(spec, ssh_cidr=spec.ssh_cidr or LOCAL_SSH_CIDR)


@dataclass
class LocalProvider:
    home: Home
    region: str = DEFAULT_REGION

    # -- seams to the AWS provider and the per-cluster files ---------------------------------
    def _dir(self, name: str) -> Path:
        return self.home.cluster_dir(name)

    def _aws(self, url: str):  # type: ignore[no-untyped-def]
        import boto3

        from dlcfn.aws.provider import AwsProvider
        from dlcfn.aws.session import AwsSession, AwsTarget

        # moto takes any credentials; fixed ones so that a machine without AWS set-up works.
        session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=self.region)
        return AwsProvider(home=self.home, session=AwsSession(target=AwsTarget(region=self.region, endpoint=url), _session=session), target="moto")

    def _endpoint(self, name: str) -> moto_server.MotoEndpoint | None:
        return moto_server.read(self._dir(name) / MOTO_DIR)

    def _hosts(self, name: str) -> LocalHosts:
        return LocalHosts.load(self._dir(name) / HOSTS_DIR)

    # -- lifecycle -----------------------------------------------------------------------------
    def create(self, request: CreateRequest, progress: Progress) -> ClusterState:
        name = request.name
        spec = _local_spec(request.spec)  # bad input: before anything is created
        if self.exists(name):
            raise DlcfnError(f"local cluster {name!r} already exists", hint=f"see `dlcfn status {name} --local`, or delete it with `dlcfn delete-stack {name} --local --yes`")
        cdir = self._dir(name)
        cdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            endpoint = moto_server.start(cdir / MOTO_DIR)
            progress.note(f"local control plane: moto server at {endpoint.url}")
            aws = self._aws(endpoint.url)
            state = aws.create(CreateRequest(name=name, spec=spec, wait=True, timeout_s=request.timeout_s,
                                             rollback=request.rollback), progress)
            return self._boot(aws, self._sync_hosts(state, progress), endpoint.url, progress)
        except BaseException:  # a failed or interrupted create leaves nothing running
            progress.note(f"create of {name} failed; removing the local cluster")
            self._teardown(name)
            raise

    def exists(self, name: str) -> bool:
        return self.home.state_file(name).exists() or self._dir(name).exists()

    def status(self, name: str) -> ClusterState:
        previous = load_state(self.home.state_file(name), name)
        endpoint = self._endpoint(name)
        if endpoint is None:
            previous.stack_status = "MOTO_SERVER_GONE"
            return previous
        state = self._aws(endpoint.url).status(name)
        return self._save(self._localize(state, self._hosts(name)))

    def list(self) -> list[ClusterSummary]:
        out = []
        root = self.home.clusters_dir
        for path in sorted(root.glob("*/state.json")) if root.exists() else []:
            state = ClusterState.from_json(path.read_text())
            if state.provider == "local":
                alive = self._endpoint(state.name) is not None
                out.append(ClusterSummary(state.name, state.stack_status if alive else "MOTO_SERVER_GONE", state.region, "", str(len(state.workers))))
        return out

    def update(self, request: UpdateRequest, progress: Progress) -> ClusterState:
        endpoint = self._require_endpoint(request.name)
        aws = self._aws(endpoint.url)
        state = aws.update(request, progress)
        return self._boot(aws, self._sync_hosts(state, progress), endpoint.url, progress)

    def delete(self, name: str, progress: Progress, *, purge_efs: bool = False) -> DeleteReport:
        existed = self.exists(name)
        # Read before the stack delete: the AWS provider removes the cluster's directory with them.
        endpoint, hosts = self._endpoint(name), self._hosts(name)
        leftovers: list = []
        try:
            if endpoint is not None:
                leftovers = self._aws(endpoint.url).delete(name, progress, purge_efs=purge_efs).leftovers
        except DlcfnError as e:  # the moto server goes away next anyway: note it, keep tearing down
            progress.note(f"stack delete in the local moto server failed: {e}")
        finally:
            hosts.stop_all()
            if endpoint is not None:
                moto_server.stop_recorded(self._dir(name) / MOTO_DIR, endpoint)
            self._teardown(name)
        return DeleteReport(existed=existed, leftovers=leftovers)

    # -- helpers ---------------------------------------------------------------------------------
    def _require_endpoint(self, name: str) -> moto_server.MotoEndpoint:
        load_state(self.home.state_file(name), name)
        endpoint = self._endpoint(name)
        if endpoint is None:
            raise DlcfnError(f"local cluster {name!r}: its moto server is not running", hint=f"delete it with `dlcfn delete-stack {name} --local --yes` and create it again")
        return endpoint

    def _teardown(self, name: str) -> None:
        """Stop every host and the moto server, remove the cluster's directory. Safe to repeat."""
        cdir = self._dir(name)
        self._hosts(name).stop_all()
        moto_server.stop(cdir / MOTO_DIR)
        shutil.rmtree(cdir, ignore_errors=True)

    def _boot(self, aws: Any, state: ClusterState, url: str, progress: Progress) -> ClusterState:
        """The nodes' boot (ASG monitor + bootstrap), as UserData and Lambda would run it on AWS."""
        from dlcfn.local.nodes import BootTarget, boot

        boot(aws.session, state, self._hosts(state.name), BootTarget(url, self.region, Path(state.shared_dir)), progress)
        return state

    def _sync_hosts(self, state: ClusterState, progress: Progress) -> ClusterState:
        """Start a host for each node without one, stop the hosts of instances that are gone."""
        hosts = self._hosts(state.name)
        wanted = [n.instance_id for n in state.nodes]
        gone = [i for i in hosts.hosts if i not in wanted]
        if gone:
            progress.note(f"stopping local hosts of {', '.join(gone)}")
            hosts.remove(gone)
        new = [i for i in wanted if i not in hosts.hosts]
        if new:
            progress.note(f"starting {len(new)} local sshd host(s)")
            hosts.add(new)
        (self._dir(state.name) / SHARED_DIR).mkdir(exist_ok=True)
        state = self._localize(state, hosts)
        for node in state.nodes:
            progress.update(Update(node.name, "local host", "sshd up", f"{node.private_ip}:{node.ssh_port}"))
        return self._save(state)

    def _localize(self, state: ClusterState, hosts: LocalHosts) -> ClusterState:
        """The AWS-shaped state with each node's address being its local host's."""
        pool = hosts.pool()
        state.provider = "local"
        state.ssh_user = getpass.getuser()
        state.ssh_key = str(pool.user_key)
        state.known_hosts = str(pool.known_hosts)
        state.host_key_note = ""
        state.shared_dir = str(self._dir(state.name) / SHARED_DIR)
        for node in state.nodes:
            record = hosts.hosts.get(node.instance_id)
            if record is not None:
                node.private_ip, node.public_ip, node.ssh_port = record.address, "", record.port
        return state

    def _save(self, state: ClusterState) -> ClusterState:
        save_state(self.home.state_file(state.name), state)
        return state
