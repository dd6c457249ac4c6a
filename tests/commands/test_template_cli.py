"""`dlcfn template` end to end through the CLI entry point: output, options as parameter
defaults, -o FILE, and bad input as one line naming the option, exit 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dlcfn.blueprint import names
from dlcfn.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["template", *args])
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.mark.parametrize(("args", "expected"), [
    (["--workers", "0"], "dlcfn: error: --workers: must be from 1 to 1000, got 0"),
    (["--workers", "100000"], "dlcfn: error: --workers: must be from 1 to 1000, got 100000"),
    (["--workers", "many"], "dlcfn: error: --workers: must be an integer from 1 to 1000, got 'many'"),
    (["--ssh-cidr", "10.0.0.300/33"], "dlcfn: error: --ssh-cidr: '10.0.0.300/33' is not an IPv4 CIDR; use a.b.c.d/n with n from 0 to 32, e.g. 203.0.113.7/32"),
    (["--efs-id", "fs-xyz"], "dlcfn: error: --efs-id: 'fs-xyz' is not valid; expected fs- followed by 8 or 17 hex digits, e.g. fs-0123abcd"),
    (["--format", "xml"], "dlcfn: error: --format: 'xml' is not allowed; choose one of: json, yaml"),
])
def test_bad_value_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    code, out, err = run(capsys, *args)
    assert (code, out, err) == (2, "", expected + "\n")


def test_bad_worker_type_lists_allowed_families(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--worker-type", "banana.large")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("dlcfn: error: --worker-type: 'banana.large' is not allowed")
    assert "p3.*, p4d.*, p5.*, g4dn.*, g5.*, g6.*, g6e.*" in err and "c5.xlarge" in err and "Traceback" not in err


def test_all_findings_reported_together(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--workers", "0", "--efs-id", "fs-1", "--region", "mars-1")
    assert code == 2
    lines = err.removeprefix("dlcfn: error: ").splitlines()
    assert [line.split(":")[0] for line in lines] == ["--workers", "--region", "--efs-id"]


def test_options_become_parameter_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--workers", "4", "--worker-type", "p3.8xlarge", "--ssh-cidr", "203.0.113.7/32",
                       "--spot", "--efs-id", "fs-0123456789abcdef0")
    params = json.loads(out)["Parameters"]
    assert code == 0
    assert params[names.P_WORKER_COUNT]["Default"] == "4" and params[names.P_WORKER_TYPE]["Default"] == "p3.8xlarge"
    assert params[names.P_SSH_LOCATION]["Default"] == "203.0.113.7/32" and params[names.P_SPOT]["Default"] == "true"
    assert params[names.P_EXISTING_FILE_SYSTEM_ID]["Default"] == "fs-0123456789abcdef0"


def test_yaml_to_file_and_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("workers: 2\nworker_type: g5.xlarge\nkey_name: team\n")
    out_file = tmp_path / "t.yaml"
    code, out, err = run(capsys, "--config", str(config), "--workers", "5", "--format", "yaml", "-o", str(out_file))
    assert code == 0 and out == "" and f"wrote {out_file}" in err
    params = yaml.load(out_file.read_text(), Loader=yaml.BaseLoader)["Parameters"]  # BaseLoader: ignore !Ref tags' types
    assert params[names.P_WORKER_COUNT]["Default"] == "5" and params[names.P_KEY_NAME]["Default"] == "team"


def test_config_typo_names_file_line_and_suggestion(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("workers: 2\nworker_tpye: g5.xlarge\n")
    code, out, err = run(capsys, "--config", str(config))
    assert code == 2 and out == ""
    assert err.startswith(f"dlcfn: error: {config}:2: worker_tpye: unknown key (did you mean 'worker_type'?)")


def test_framework_lists_become_parameter_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--gpu-framework-packages", "mxnet-cu118==1.9.1 numpy==1.23.5", "--cpu-framework-packages", "")
    params = json.loads(out)["Parameters"]
    assert code == 0
    assert params[names.P_GPU_FRAMEWORK]["Default"] == "mxnet-cu118==1.9.1 numpy==1.23.5"
    assert params[names.P_CPU_FRAMEWORK]["Default"] == ""


def test_bad_framework_list_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--gpu-framework-packages", "mxnet; rm -rf /")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("dlcfn: error: --gpu-framework-packages: ") and "Traceback" not in err
