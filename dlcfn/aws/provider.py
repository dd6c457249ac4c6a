"""The AWS cluster provider: the stack lifecycle plus inventory, host keys and the sweep, behind
the `dlcfn.provider.ClusterProvider` seam.

"Ready" means: the stack reached CREATE/UPDATE_COMPLETE (on AWS the template's WaitCondition makes
that wait for the master's signal that every node is set up) and the master plus `WorkerCount`
workers are `running` in EC2. moto does not model WaitCondition (the moto template variant leaves
it out), so under moto the second half is the whole check.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcfn.aws import inventory, stack as stk
from dlcfn.aws.events import StackEvent
from dlcfn.aws.session import AwsError, AwsSession, AwsTarget, StackExists, aws_errors
from dlcfn.aws.sweep import sweep
from dlcfn.blueprint import names
from dlcfn.errors import DlcfnError
from dlcfn.home import Home
from dlcfn.inventory import ClusterState, load_state, save_state
from dlcfn.progress import Progress, Update
from dlcfn.provider import ClusterSummary, CreateRequest, DeleteReport, ProviderOptions, UpdateRequest

_SENT_PARAMETERS = "parameters.json"  # the parameter values create-stack sent, in the cluster's directory
# (spec, target) -> template JSON text; the default is the blueprint's renderer.
Renderer = Callable[[Any, str], str]
UpdateParams = Callable[[dict[str, str], dict[str, Any]], dict[str, str]]


def make_provider(home: Home, options: ProviderOptions) -> "AwsProvider":
    session = AwsSession.open(AwsTarget(profile=options.profile, region=options.region))
    return AwsProvider(home=home, session=session, target=resolve_target(options.target, session))


def resolve_target(choice: str, session: AwsSession) -> str:
    """`auto` deploys the moto variant when an endpoint override is set (moto server), else AWS."""
    if choice != "auto":
        return choice
    return "moto" if session.target.endpoint_url else "aws"


def default_renderer(spec: Any, target: str) -> str:
    """The blueprint's JSON without indentation: CloudFormation takes 51,200 bytes inline, and
    the readable rendering (templates/) spends several KB on whitespace."""
    from dlcfn.blueprint.render import Target, render

    return json.dumps(json.loads(render(spec, Target(target), "json")), separators=(",", ":"), sort_keys=True)


def default_update_parameters(current: dict[str, str], options: dict[str, Any]) -> dict[str, str]:
    from dlcfn.spec.cluster import update_parameters

    return dict(update_parameters(current, options))


@dataclass
class AwsProvider:
    home: Home
    session: AwsSession
    target: str = "aws"
    render: Renderer = default_renderer
    update_parameters: UpdateParams = default_update_parameters
    policy: stk.WaitPolicy = field(default_factory=stk.WaitPolicy)

    @property
    def stacks(self) -> stk.Stacks:
        return stk.Stacks(self.session)

    # -- create ------------------------------------------------------------------------------
    def create(self, request: CreateRequest, progress: Progress) -> ClusterState:
        name, stacks = request.name, self.stacks
        if stacks.find(name) is not None:
            raise StackExists(f"cluster {name!r} already exists in {self.session.region}", hint=f"see `dlcfn status {name}`, or pick another name")
        body = self.render(request.spec, self.target)
        parameters = request.spec.parameters()
        stack_id = stacks.create(name, body, parameters, rollback=request.rollback)
        self._record_parameters(name, parameters)
        progress.note(f"creating stack {name} in {self.session.region} ({self.target} template)")
        access = self._access(name, request.ssh_key)
        if not request.wait:
            return self._save(self._pending(name, stack_id, access))
        policy = self._policy(request.timeout_s)
        stacks.wait(name, stack_id, stk.Operation.CREATE, stacks.tail(stack_id, fresh=True), policy, _reporter(progress))
        return self._ready(name, access, policy, progress)

    # -- status / list -----------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return self.stacks.find(name) is not None

    def status(self, name: str) -> ClusterState:
        stack = self.stacks.describe(name)
        access = self._access(name, "")
        if stack["StackStatus"] not in stk.USABLE:  # in progress or failed: no nodes to list yet
            state = self._pending(name, stack["StackId"], access)
            state.stack_status = stack["StackStatus"]
            return self._save(state)
        return self._save(self._with_host_keys(inventory.build_state(self.session, stack, access)))

    def list(self) -> list[ClusterSummary]:
        out = []
        for s in self.stacks.list_clusters():
            params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in s.get("Parameters", [])}
            created = s.get("CreationTime")
            out.append(ClusterSummary(s["StackName"], s["StackStatus"], self.session.region,
                                      created.isoformat(timespec="seconds") if created else "", params.get(names.P_WORKER_COUNT, "")))
        return sorted(out, key=lambda c: c.name)

    # -- update ------------------------------------------------------------------------------
    def update(self, request: UpdateRequest, progress: Progress) -> ClusterState:
        name, stacks = request.name, self.stacks
        stack = stacks.describe(name)
        if stack["StackStatus"] not in stk.USABLE:
            raise DlcfnError(f"cluster {name!r} is {stack['StackStatus']}, it cannot be updated now", hint=f"see `dlcfn status {name}`")
        current = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
        moto_values = self._moto_sent_parameters(name)
        if moto_values is not None:  # what was last sent is the truth under moto (see _moto_sent_parameters)
            current.update(moto_values)
        changes = self.update_parameters(current, request.options)
        with aws_errors(f"read the template of {name!r}"):
            body = self.stacks.cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
        body = body if isinstance(body, str) else json.dumps(body)  # boto3 parses JSON bodies into dicts
        parameters: dict[str, str | None] = {k: None for k in current}  # None: keep the previous value
        if moto_values is not None:
            parameters = dict(moto_values)
        parameters.update(changes)
        policy = self._policy(request.timeout_s)
        sent = {k: v for k, v in parameters.items() if v is not None}  # the moto path sends every value
        if moto_values is not None:  # moto: no change set (see Stacks.plan_parameter_update), so no resource list
            summary = stacks.plan_parameter_update(name, sent, current)
        else:
            summary = stacks.plan_update(name, body, parameters, policy)
        for line in [f"change set for {name}:", *summary.lines()]:
            progress.note(line)
        confirmed = False
        try:
            confirmed = request.confirm is None or bool(request.confirm(summary.lines()))
        finally:  # also on Ctrl-C / EOF at the prompt: no change set is left behind
            if not confirmed and summary.change_set_id:
                stacks.discard_change_set(summary.change_set_id)
        if not confirmed:
            raise DlcfnError(f"update of {name!r} cancelled; nothing changed")
        tail = stacks.tail(stack["StackId"], fresh=False)
        if moto_values is not None:
            stacks.update(name, body, sent)
            self._record_parameters(name, sent)  # what the stack now holds is what the next update resends
        else:
            stacks.execute(summary)
        stacks.wait(name, stack["StackId"], stk.Operation.UPDATE, tail, policy, _reporter(progress))
        return self._ready(name, self._access(name, ""), policy, progress)

    # -- delete ------------------------------------------------------------------------------
    def delete(self, name: str, progress: Progress, *, purge_efs: bool = False) -> DeleteReport:
        stacks = self.stacks
        stack = stacks.find(name)
        created: list[tuple[str, str]] = []
        if stack is not None:
            created = stacks.resources(stack["StackId"])  # what to check for once the stack is gone
            tail = stacks.tail(stack["StackId"], fresh=False)
            progress.note(f"deleting stack {name}")
            if self._delete_stack(stacks, stack["StackId"], progress):
                stacks.wait(name, stack["StackId"], stk.Operation.DELETE, tail, self.policy, _reporter(progress))
        with aws_errors(f"sweep what is left of {name!r}"):
            leftovers = sweep(self.session, name, purge_efs=purge_efs, stack_resources=created)
        shutil.rmtree(self.home.cluster_dir(name), ignore_errors=True)
        return DeleteReport(existed=stack is not None, leftovers=leftovers)

    def _delete_stack(self, stacks: stk.Stacks, stack_id: str, progress: Progress) -> bool:
        """Start the delete; False when there is nothing to wait for.

        moto deletes synchronously and cannot delete a VPC with route tables it created (it never
        deletes those), so DeleteStack itself fails with DependencyViolation after dropping the
        stack; the sweep that follows removes the route tables and the VPC. On AWS that error
        does not come from DeleteStack, so it stays an error there.
        """
        try:
            stacks.delete(stack_id)
        except AwsError as e:
            if self.target != "moto" or e.code != "DependencyViolation":
                raise
            progress.note("moto left the VPC and its route tables behind (a moto gap); the sweep removes them")
            return False
        return True

    def _record_parameters(self, name: str, parameters: dict[str, str]) -> None:
        sent = self.home.cluster_dir(name) / _SENT_PARAMETERS
        sent.parent.mkdir(parents=True, exist_ok=True)
        sent.write_text(json.dumps(parameters, indent=1, sort_keys=True))

    def _moto_sent_parameters(self, name: str) -> dict[str, str] | None:
        """Under moto, the values create-stack sent (None elsewhere, or when not recorded).

        moto mishandles UsePreviousValue twice: it reuses an SSM-typed parameter's resolved AMI id
        as if it were the parameter path, and counts a defaulted parameter named in the update as
        changed, then fails to update the resources that use it (EFS mount target, the worker
        group). Resending exactly what create sent avoids both. On AWS, UsePreviousValue is right.
        """
        sent = self.home.cluster_dir(name) / _SENT_PARAMETERS
        if self.target != "moto" or not sent.exists():
            return None
        return dict(json.loads(sent.read_text()))

    # -- helpers -----------------------------------------------------------------------------
    def _policy(self, timeout_s: float) -> stk.WaitPolicy:
        return stk.WaitPolicy(timeout_s=timeout_s, first_poll_s=self.policy.first_poll_s, max_poll_s=self.policy.max_poll_s, clock=self.policy.clock)

    def _access(self, name: str, ssh_key: str) -> inventory.Access:
        known_hosts = self.home.cluster_dir(name) / "known_hosts"
        path = self.home.state_file(name)
        previous = load_state(path, name) if path.exists() else None
        key = ssh_key or (previous.ssh_key if previous else "")
        user = previous.ssh_user if previous else "ubuntu"
        return inventory.Access(ssh_user=user, ssh_key=key, known_hosts=known_hosts)

    def _pending(self, name: str, stack_id: str, access: inventory.Access) -> ClusterState:
        return ClusterState(name=name, provider="aws", region=self.session.region, stack_name=name,
                            stack_status="CREATE_IN_PROGRESS", endpoint_url=self.session.target.endpoint_url,
                            ssh_user=access.ssh_user, ssh_key=access.ssh_key, known_hosts=str(access.known_hosts))

    def _save(self, state: ClusterState) -> ClusterState:
        save_state(self.home.state_file(state.name), state)
        return state

    def _ready(self, name: str, access: inventory.Access, policy: stk.WaitPolicy, progress: Progress) -> ClusterState:
        """Poll EC2 until the master and WorkerCount workers run; report each node's state."""
        clock, start, delay = policy.clock, policy.clock.monotonic(), policy.first_poll_s
        while True:
            stack = self.stacks.describe(name)
            state = inventory.build_state(self.session, stack, access)
            expected = int({p["ParameterKey"]: p.get("ParameterValue", "0") for p in stack.get("Parameters", [])}.get(names.P_WORKER_COUNT, "0") or 0)
            for node in state.nodes:
                progress.update(Update(node.name, f"{node.role} {node.instance_type}", node.state, node.private_ip))
            not_running = [n.name for n in state.nodes if n.state != "running"]
            if state.master is not None and len(state.workers) == expected and not not_running:
                progress.note(f"cluster {name} is ready: master + {expected} workers running")
                return self._save(self._with_host_keys(state))
            if clock.monotonic() - start >= policy.timeout_s:
                have = f"{len(state.workers)}/{expected} workers" + (f"; not running yet: {', '.join(not_running)}" if not_running else "")
                raise stk.StackTimeout(f"cluster {name!r} stack is {stack['StackStatus']} but the nodes are not ready after {policy.timeout_s:.0f} s ({have})",
                                       hint=f"check again with `dlcfn status {name}`")
            clock.sleep(delay)
            delay = min(delay * 2, policy.max_poll_s)

    def _with_host_keys(self, state: ClusterState) -> ClusterState:
        missing = inventory.record_host_keys(self.session, state, self.home.cluster_dir(state.name) / "host_keys.json")
        state.host_key_note = _host_key_note(missing, self.target)
        return state


def _host_key_note(missing: list[str], target: str) -> str:
    if not missing:
        return ""
    why = "moto has no console output with SSH host keys" if target == "moto" else "their console output has no SSH host key block yet (still booting?)"
    return f"host keys unknown for {', '.join(missing)}: {why}"


def _reporter(progress: Progress) -> Callable[[StackEvent], None]:
    def report(event: StackEvent) -> None:
        progress.update(Update(event.logical_id, event.resource_type, event.status, event.reason))

    return report
