"""Golden snapshots: each rendering as sorted, indented JSON under golden/. A mismatch fails with
a unified diff; `DLCFN_REGEN=1 pytest tests/blueprint/test_golden.py` rewrites them.

The shipped node code (the bootstrap inside UserData, the Lambda's inline code) is replaced by a
marker, so that editing dlcfn/node/ does not churn the snapshots; templates/ drift covers it."""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest
from renderings import RENDERINGS

from dlcfn.blueprint.render import Target, template_dict

GOLDEN = Path(__file__).parent / "golden"
CASES = [(name, Target.AWS) for name in sorted(RENDERINGS)] + [("default", Target.MOTO)]


def _without_node_code(t: dict) -> dict:
    for resource in t["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function":
            props["Code"]["ZipFile"] = "<dlcfn/node/asg_monitor.py, minified>"
        if resource["Type"] == "AWS::EC2::LaunchTemplate":
            sub = props["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
            script = sub[0]
            start = script.index("\n", script.index("<<'DLCFN_BOOTSTRAP'")) + 1  # the here-document's body
            end = script.index("\nDLCFN_BOOTSTRAP\n", start)
            sub[0] = script[:start] + "<base64 gzip of dlcfn/node/bootstrap.py, minified>" + script[end:]
    return t


def snapshot(name: str, target: Target) -> str:
    return json.dumps(_without_node_code(template_dict(RENDERINGS[name], target)), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize(("name", "target"), CASES, ids=[f"{n}-{t.value}" for n, t in CASES])
def test_rendering_matches_golden(name: str, target: Target) -> None:
    path = GOLDEN / f"{name}-{target.value}.json"
    actual = snapshot(name, target)
    if os.environ.get("DLCFN_REGEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    expected = path.read_text() if path.exists() else ""
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(path), "rendered", n=2))
        pytest.fail(f"{path.name} differs from the rendering (DLCFN_REGEN=1 to accept):\n{diff[:6000]}")


def test_rendering_is_deterministic() -> None:
    assert snapshot("spot", Target.AWS) == snapshot("spot", Target.AWS)
