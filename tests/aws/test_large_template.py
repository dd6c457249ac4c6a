"""Templates over CloudFormation's 51,200-byte inline limit go through S3: staged in the stack's
own bucket for the one call, then deleted with the bucket; one left by an interrupted call is
removed by delete-stack's sweep. Against moto in-process (its CloudFormation reads TemplateURL
from its S3)."""

from __future__ import annotations

import json
from typing import Any

import boto3
from minicluster import MiniSpec, mini_template

from dlcfn.aws.stack import TEMPLATE_BODY_LIMIT, template_bucket
from dlcfn.provider import CreateRequest, UpdateRequest


def large_renderer(spec: Any, target: str) -> str:
    """The mini cluster with template Metadata that takes it over the inline limit."""
    template = mini_template()
    template["Metadata"] = {"Padding": "x" * (TEMPLATE_BODY_LIMIT + 1000)}
    return json.dumps(template, sort_keys=True)


def dlcfn_buckets() -> list[str]:
    return [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"] if b["Name"].startswith("dlcfn-template-")]


def test_large_template_is_staged_in_s3_and_nothing_stays(provider: Any, progress: Any) -> None:
    sent: list[tuple[str, set[str]]] = []  # (operation, its template arguments), as boto3 sends them
    provider.session.client("cloudformation").meta.events.register(
        "provide-client-params.cloudformation.*",
        lambda params, model, **_: sent.append((model.name, {k for k in params if k.startswith("Template")})))
    provider.render = large_renderer
    state = provider.create(CreateRequest(name="big", spec=MiniSpec(workers=1)), progress)
    assert ("CreateStack", {"TemplateURL"}) in sent
    assert state.stack_status == "CREATE_COMPLETE" and [n.name for n in state.nodes] == ["master", "worker-1"]
    held = boto3.client("cloudformation").get_template(StackName="big")["TemplateBody"]
    held = held if isinstance(held, dict) else json.loads(held)
    assert len(held["Metadata"]["Padding"]) == TEMPLATE_BODY_LIMIT + 1000
    assert dlcfn_buckets() == []

    updated = provider.update(UpdateRequest(name="big", options={"workers": 2}), progress)
    assert [n.name for n in updated.nodes] == ["master", "worker-1", "worker-2"]
    assert ("UpdateStack", {"TemplateURL"}) in sent  # moto's path; AWS's change set gets the same argument
    assert dlcfn_buckets() == []


def test_delete_sweeps_a_staging_bucket_left_by_an_interrupted_call(provider: Any, progress: Any) -> None:
    provider.create(CreateRequest(name="cut", spec=MiniSpec(workers=1)), progress)
    bucket = template_bucket(boto3.client("sts").get_caller_identity()["Account"], "us-east-1", "cut")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="template.json", Body=b"{}")

    report = provider.delete("cut", progress)
    assert ("s3-bucket", bucket, "deleted") in {(x.kind, x.resource_id, x.outcome.value) for x in report.leftovers}
    assert dlcfn_buckets() == []
