"""The job spec: defaults, and one precise finding (key path + line) per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlcfn.errors import UserInputError, ValidationFailed
from dlcfn.spec.job import KVStore, load_job

GOOD = """\
name: lstm
script: train.py
args: [--epochs, 2, --lr, 0.1]
num_workers: 2
kvstore: dist_sync
env:
  OMP_NUM_THREADS: 2
  DEBUG: true
setup:
  - echo ready
timeout: 60
results:
  - out/*.json
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "train.py").write_text("print('hi')\n")
    job = tmp_path / "job.yaml"
    job.write_text(text)
    return job


def test_good_spec_and_defaults(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, GOOD))
    assert spec.num_servers == 2  # defaults to the number of workers
    assert spec.workdir == tmp_path.resolve()
    assert spec.args == ["--epochs", "2", "--lr", "0.1"]
    assert spec.env == {"OMP_NUM_THREADS": "2", "DEBUG": "1"}
    assert spec.kvstore is KVStore.DIST_SYNC and spec.python == "python3"
    assert not spec.python_given and spec.with_python("/opt/dlcfn/venv/bin/python").python == "/opt/dlcfn/venv/bin/python"
    assert spec.with_python("") is spec  # a hosts file names no interpreter: python3 stays


def test_explicit_python_is_kept_even_when_it_is_python3(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, "name: a\nscript: train.py\npython: python3\n"))
    assert spec.python_given and spec.with_python("/opt/dlcfn/venv/bin/python").python == "python3"


def test_local_kvstore_has_no_servers(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, "name: a\nscript: train.py\nkvstore: local\n"))
    assert (spec.num_workers, spec.num_servers) == (1, 0)


def test_workdir_is_relative_to_the_job_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "t.py").write_text("")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.yaml").write_text("name: a\nscript: t.py\nworkdir: ../code\n")
    assert load_job(tmp_path / "jobs" / "job.yaml").workdir == (tmp_path / "code").resolve()


BAD = [
    ("name: a\nscript: train.py\nnum_wokers: 2\n", "job.yaml:3: num_wokers: unknown key (did you mean 'num_workers'?)"),
    ("name: a\nscript: train.py\nkvstore: dist_snyc\n", "job.yaml:3: kvstore: 'dist_snyc' is not allowed (did you mean 'dist_sync'?)"),
    ("name: a\nscript: train.py\nengine: tensorflow\n", "job.yaml:3: engine: 'tensorflow' is not allowed"),
    ("script: train.py\n", "job.yaml: name: is required"),
    ("name: a\n", "job.yaml: script: is required"),
    ("name: a b\nscript: train.py\n", "job.yaml:1: name: must be 1-63 letters"),
    ("name: a\nscript: missing.py\n", "job.yaml:2: script:"),
    ("name: a\nscript: ../train.py\n", "job.yaml:2: script: '../train.py' must be a relative path inside workdir"),
    ("name: a\nscript: train.py\nworkdir: nowhere\n", "job.yaml:3: workdir: directory"),
    ("name: a\nscript: train.py\nnum_workers: 0\n", "job.yaml:3: num_workers: must be from 1 to 4096, got 0"),
    ("name: a\nscript: train.py\nnum_workers: two\n", "job.yaml:3: num_workers: must be an integer"),
    ("name: a\nscript: train.py\nnum_servers: 0\n", "job.yaml:3: num_servers: kvstore 'dist_sync' needs at least 1 server"),
    ("name: a\nscript: train.py\nkvstore: local\nnum_workers: 2\n", "job.yaml:4: num_workers: kvstore 'local' runs one process"),
    ("name: a\nscript: train.py\nkvstore: dist_device_sync\n", "job.yaml: gpus_per_worker: kvstore 'dist_device_sync' aggregates on GPUs"),
    ("name: a\nscript: train.py\ntimeout: -5\n", "job.yaml:3: timeout: must be from 0 to"),
    ("name: a\nscript: train.py\nenv: [A, B]\n", "job.yaml:3: env: must be a mapping"),
    ("name: a\nscript: train.py\nenv:\n  DMLC_ROLE: worker\n", "job.yaml:4: env.DMLC_ROLE: is set by dlcfn"),
    ("name: a\nscript: train.py\nenv:\n  1BAD: x\n", "job.yaml:4: env.1BAD: is not a valid environment variable name"),
    ("name: a\nscript: train.py\nsetup: echo hi\n", "job.yaml:3: setup: must be a list"),
    ("name: a\nscript: train.py\nresults:\n  - /etc/passwd\n", "job.yaml:4: results.0: '/etc/passwd' must be a relative path"),
    ("name: a\nscript: train.py\nresults:\n  - out/$(reboot)\n", "job.yaml:4: results.0:"),
    ("name: a\nscript: train.py\nargs:\n  - {a: 1}\n", "job.yaml:4: args.0: must be a non-empty string"),
    ("name: a\nscript: train.py\npython: python3; rm -rf /\n", "job.yaml:3: python: must be an interpreter command"),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[e.split(": ")[1] + str(i) for i, (_, e) in enumerate(BAD)])
def test_bad_spec_is_one_precise_finding(tmp_path: Path, text: str, expected: str) -> None:
    job = write(tmp_path, text)
    with pytest.raises(ValidationFailed) as info:
        load_job(job)
    [line] = info.value.render().splitlines()
    assert line.startswith(str(job.parent) + "/" + expected), line
    assert int(info.value.exit_code) == 2


def test_every_finding_is_reported_at_once(tmp_path: Path) -> None:
    job = write(tmp_path, "name: a\nscript: train.py\nnum_wokers: 2\nkvstore: nope\ntimeout: x\n")
    with pytest.raises(ValidationFailed) as info:
        load_job(job)
    paths = [f.path for f in info.value.findings]
    assert paths == ["num_wokers", "kvstore", "timeout"]


@pytest.mark.parametrize("text", ["name: [a\n", "- a\n"])
def test_unparseable_file_is_one_line(tmp_path: Path, text: str) -> None:
    with pytest.raises(UserInputError) as info:
        load_job(write(tmp_path, text))
    assert "\n" not in info.value.render()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        load_job(tmp_path / "nope.yaml")
