"""cfn-lint (its Python API) on every rendering in four regions: no errors, no warnings."""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint
from renderings import REGIONS, RENDERINGS

from dlcfn.blueprint.render import Target, render


@pytest.mark.parametrize("name", sorted(RENDERINGS))
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_rendering_is_lint_clean(name: str, fmt: str) -> None:
    text = render(RENDERINGS[name], Target.AWS, fmt)
    matches = lint(text, config=ManualArgs(regions=list(REGIONS)))
    assert [str(m) for m in matches] == []


def test_lint_catches_a_broken_template() -> None:
    """The linter really runs: the same template with a bad instance type is flagged."""
    text = render(RENDERINGS["default"], Target.AWS, "json").replace('"Timeout":60', '"Timeout":"sixty"')
    assert any(m.rule.id.startswith("E") for m in lint(text, config=ManualArgs(regions=["us-east-1"])))
