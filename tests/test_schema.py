"""Shared spec validation helpers: YAML line numbers, did-you-mean, typed checks."""

from __future__ import annotations

import pytest

from dlcfn.errors import UserInputError
from dlcfn.spec.schema import check_choice, check_int_range, check_unknown_keys, did_you_mean, load_yaml_document


def test_lines_are_recorded_for_nested_keys() -> None:
    doc = load_yaml_document("name: a\nenv:\n  A: 1\nresults:\n  - x\n  - y\n", source="job.yaml")
    assert doc.line("name") == 1
    assert doc.line("env.A") == 3
    assert doc.line("results.1") == 6


def test_unknown_key_has_did_you_mean_and_line() -> None:
    doc = load_yaml_document("name: a\nnum_wokers: 2\n", source="job.yaml")
    [finding] = check_unknown_keys(doc, doc.data, ["name", "num_workers"])
    assert finding.render().startswith("job.yaml:2: num_wokers: unknown key (did you mean 'num_workers'?)")


def test_yaml_syntax_error_is_one_line_user_error() -> None:
    with pytest.raises(UserInputError) as info:
        load_yaml_document("name: [a\n", source="job.yaml")
    assert info.value.render().startswith("job.yaml:")
    assert "\n" not in info.value.render()


def test_top_level_must_be_mapping() -> None:
    with pytest.raises(UserInputError):
        load_yaml_document("- a\n- b\n", source="x.yaml")


@pytest.mark.parametrize("value", [0, 1001, "3", True])
def test_int_range_rejects(value: object) -> None:
    doc = load_yaml_document("")
    assert check_int_range(doc, "workers", value, 1, 1000)


def test_int_range_accepts() -> None:
    assert check_int_range(load_yaml_document(""), "workers", 4, 1, 1000) == []


def test_choice_suggests() -> None:
    [f] = check_choice(load_yaml_document(""), "kvstore", "dist_snyc", ["dist_sync", "local"])
    assert "did you mean 'dist_sync'" in f.message
    assert did_you_mean("zzzz", ["dist_sync"]) == ""
