"""checkov (its own venv, `make checkov`) on every rendering: 0 failed checks. Each finding is
fixed in the builders or skipped in the resource's Metadata with a stated reason."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from renderings import RENDERINGS

from dlcfn.blueprint.render import Target, render

CHECKOV = Path(__file__).parents[2] / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make checkov` to create the checkov venv")
    directory = tmp_path_factory.mktemp("checkov")
    for name, spec in RENDERINGS.items():
        (directory / f"{name}.json").write_text(render(spec, Target.AWS, "json"))
    # BC_SKIP_MAPPING: offline, do not fetch the platform's guideline mappings.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    done = subprocess.run([str(CHECKOV), "--framework", "cloudformation", "-d", str(directory), "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=300)
    data = json.loads(done.stdout)
    return data[0] if isinstance(data, list) else data


def test_no_failed_checks(report: dict) -> None:
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 0 and report["summary"]["resource_count"] >= 4 * 30


def test_every_skip_states_a_reason(report: dict) -> None:
    skipped = report["results"]["skipped_checks"]
    assert skipped, "expected the documented suppressions"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 30, check["check_id"]
