"""The CLI skeleton: lazy command loading, error mapping, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dlcfn.cli import COMMANDS, main
from dlcfn.errors import Finding, Level, ValidationFailed, raise_for_findings


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlcfn", *args], capture_output=True, text=True, timeout=60)


def test_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from dlcfn.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('boto3', 'botocore', 'troposphere', 'mxnet', 'paramiko', 'moto') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout, out.stdout


def test_help_lists_every_command() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_unknown_command_suggests_and_exits_2() -> None:
    out = run_cli("tempate")
    assert out.returncode == 2
    assert "did you mean 'template'" in out.stderr
    assert "Traceback" not in out.stderr


def test_validation_failed_renders_one_line_per_finding(capsys: pytest.CaptureFixture[str]) -> None:
    findings = [
        Finding("workers", "must be from 1 to 1000, got 0"),
        Finding("ssh_cidr", "bad", level=Level.WARNING),
        Finding("kvstore", "unknown", line=3, source="job.yaml"),
    ]
    with pytest.raises(ValidationFailed) as info:
        raise_for_findings(findings)
    assert info.value.render().splitlines() == ["workers: must be from 1 to 1000, got 0", "job.yaml:3: kvstore: unknown"]
    assert int(info.value.exit_code) == 2
