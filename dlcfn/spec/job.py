"""The job spec (job.yaml): `JobSpec`, `load_job` and its validators.

Every rule is a small function returning findings; `validate_job` runs them all so that a user
sees every problem of a file at once, each naming the key path and line. Nothing here touches
the network or starts a process: a spec that fails here leaves no trace anywhere.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlcfn.errors import Finding, UserInputError, raise_for_findings
from dlcfn.spec.schema import Document, check_choice, check_int_range, check_type, check_unknown_keys, load_yaml_document


class Engine(str, enum.Enum):
    MXNET = "mxnet"


class KVStore(str, enum.Enum):
    DIST_SYNC = "dist_sync"
    DIST_ASYNC = "dist_async"
    DIST_DEVICE_SYNC = "dist_device_sync"
    LOCAL = "local"

    @property
    def distributed(self) -> bool:
        return self is not KVStore.LOCAL


MAX_PROCESSES = 4096
MAX_TIMEOUT = 30 * 24 * 3600
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Result globs are expanded by the remote shell, unquoted: keep them to characters that cannot
# inject anything (no spaces, quotes, $, ;, backticks).
GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]/-]+$")
# Set by the runner: a job must not override the MXNet contract it depends on.
RESERVED_ENV_PREFIXES = ("DMLC_", "DLCFN_")

KEYS = (
    "name", "engine", "script", "args", "workdir", "num_workers", "num_servers", "kvstore",
    "gpus_per_worker", "omp_threads", "env", "setup", "timeout", "results", "python",
)
PYTHON_RE = re.compile(r"^[A-Za-z0-9_./+-]+$")


@dataclass
class JobSpec:
    """A validated job: what to run, how many processes of each role, what to bring home."""

    name: str
    script: str  # path relative to workdir, run with python3
    workdir: Path  # absolute local directory shipped to the hosts
    num_workers: int = 1
    num_servers: int = 1
    engine: Engine = Engine.MXNET
    kvstore: KVStore = KVStore.DIST_SYNC
    args: list[str] = field(default_factory=list)
    gpus_per_worker: int = 0
    omp_threads: int = 0  # 0 = auto: the host's CPUs divided by the job's processes on it
    env: dict[str, str] = field(default_factory=dict)
    setup: list[str] = field(default_factory=list)
    timeout: int = 0  # seconds; 0 = no limit
    results: list[str] = field(default_factory=list)
    python: str = "python3"  # the interpreter on the hosts (a virtualenv's python, for example)
    python_given: bool = False  # `python:` is in the job file (else the cluster's may replace python3)
    source: str = ""  # the job file, for messages

    def with_python(self, default: str) -> "JobSpec":
        """This job with `default` (the hosts' interpreter, "" for none) unless its file names one."""
        return self if self.python_given or not default else dataclasses.replace(self, python=default)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(workdir=str(self.workdir), engine=self.engine.value, kvstore=self.kvstore.value)
        return d


def load_job(path: Path | str) -> JobSpec:
    """Read and validate a job file; raise ValidationFailed (exit 2) listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise UserInputError(f"job file {path} does not exist") from e
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserInputError(f"job file {path} cannot be read: {e.__class__.__name__}") from e
    doc = load_yaml_document(text, source=str(path))
    raise_for_findings(validate_job(doc, path.resolve().parent))
    return _build(doc.data, path)


def validate_job(doc: Document, base_dir: Path) -> list[Finding]:
    """All findings for a parsed job document; `base_dir` resolves the relative `workdir`."""
    data = doc.data
    findings = check_unknown_keys(doc, data, KEYS)
    for rule in _RULES:
        findings += rule(doc, data, base_dir)
    return findings


# --- rules: (doc, data, base_dir) -> findings -------------------------------------------------


def _check_required(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    return [doc.finding(k, f"is required; add `{k}: ...` to the job file") for k in ("name", "script") if k not in data]


def _check_name(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    name = data.get("name")
    if name is None or (isinstance(name, str) and NAME_RE.match(name)):
        return []
    return [doc.finding("name", f"must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, got {name!r}")]


def _check_engine_kvstore(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    findings = []
    if "engine" in data:
        findings += check_choice(doc, "engine", data["engine"], [e.value for e in Engine])
    if "kvstore" in data:
        findings += check_choice(doc, "kvstore", data["kvstore"], [k.value for k in KVStore])
    return findings


def _check_counts(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    findings = []
    if "num_workers" in data:
        findings += check_int_range(doc, "num_workers", data["num_workers"], 1, MAX_PROCESSES)
    if "num_servers" in data:
        findings += check_int_range(doc, "num_servers", data["num_servers"], 0, MAX_PROCESSES)
    for key, high in (("gpus_per_worker", 16), ("omp_threads", 1024), ("timeout", MAX_TIMEOUT)):
        if key in data:
            findings += check_int_range(doc, key, data[key], 0, high)
    if findings:
        return findings
    kv = data.get("kvstore", KVStore.DIST_SYNC.value)
    if kv == KVStore.LOCAL.value and data.get("num_workers", 1) != 1:
        findings.append(doc.finding("num_workers", "kvstore 'local' runs one process; set num_workers: 1 or use a dist_* kvstore"))
    if kv == KVStore.LOCAL.value and data.get("num_servers", 0) != 0:
        findings.append(doc.finding("num_servers", "kvstore 'local' has no servers; remove num_servers or use a dist_* kvstore"))
    if kv in {k.value for k in KVStore if k.distributed} and data.get("num_servers") == 0:
        findings.append(doc.finding("num_servers", f"kvstore {kv!r} needs at least 1 server"))
    if kv == KVStore.DIST_DEVICE_SYNC.value and data.get("gpus_per_worker", 0) == 0:
        findings.append(doc.finding("gpus_per_worker", "kvstore 'dist_device_sync' aggregates on GPUs; set gpus_per_worker >= 1 or use dist_sync"))
    return findings


def _check_script_workdir(doc: Document, data: dict[str, Any], base_dir: Path) -> list[Finding]:
    findings: list[Finding] = []
    workdir = data.get("workdir", ".")
    if not isinstance(workdir, str) or not workdir:
        return [doc.finding("workdir", f"must be a directory path (relative to the job file), got {workdir!r}")]
    wd = (base_dir / workdir).resolve()
    if not wd.is_dir():
        return [doc.finding("workdir", f"directory {wd} does not exist; workdir is relative to the job file's directory")]
    script = data.get("script")
    if script is None:
        return findings
    if not isinstance(script, str) or not script:
        return [doc.finding("script", f"must be a path to a Python file inside workdir, got {script!r}")]
    target = (wd / script).resolve()
    if Path(script).is_absolute() or not target.is_relative_to(wd):
        findings.append(doc.finding("script", f"{script!r} must be a relative path inside workdir {wd}"))
    elif not target.is_file():
        findings.append(doc.finding("script", f"{target} does not exist; script is relative to workdir {wd}"))
    return findings


def _check_lists(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    findings = []
    for key, scalar_ok in (("args", True), ("setup", False), ("results", False)):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            findings.append(doc.finding(key, f"must be a list (YAML `- item` lines), got {type(value).__name__}"))
            continue
        for i, item in enumerate(value):
            ok = isinstance(item, str) or (scalar_ok and isinstance(item, (int, float)) and not isinstance(item, bool))
            if not ok or item == "":
                findings.append(doc.finding(f"{key}.{i}", f"must be a non-empty string, got {item!r}"))
    for i, glob in enumerate(data.get("results") or []):
        if isinstance(glob, str) and glob and not _glob_ok(glob):
            findings.append(doc.finding(f"results.{i}", f"{glob!r} must be a relative path or glob inside the job's working directory (letters, digits, _ . - / * ? [ ])"))
    return findings


def _check_env(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    env = data.get("env")
    if env is None:
        return []
    if not isinstance(env, dict):
        return check_type(doc, "env", env, dict, "a mapping of NAME: value")
    findings = []
    for key, value in env.items():
        path = f"env.{key}"
        if not isinstance(key, str) or not ENV_NAME_RE.match(key):
            findings.append(doc.finding(path, "is not a valid environment variable name (letters, digits, _; not starting with a digit)"))
        elif key.startswith(RESERVED_ENV_PREFIXES):
            findings.append(doc.finding(path, "is set by dlcfn for every process (DMLC_*/DLCFN_* are the launch contract); remove it"))
        if isinstance(value, (dict, list)) or value is None:
            findings.append(doc.finding(path, f"must be a string or number, got {value!r}"))
    return findings


def _check_python(doc: Document, data: dict[str, Any], _: Path) -> list[Finding]:
    python = data.get("python")
    if python is None or (isinstance(python, str) and PYTHON_RE.match(python)):
        return []
    return [doc.finding("python", f"must be an interpreter command or path such as python3 or /opt/venv/bin/python, got {python!r}")]


def _glob_ok(glob: str) -> bool:
    return bool(GLOB_RE.match(glob)) and not glob.startswith("/") and ".." not in glob.split("/")


_RULES: tuple[Callable[[Document, dict[str, Any], Path], list[Finding]], ...] = (
    _check_required, _check_name, _check_engine_kvstore, _check_counts, _check_script_workdir, _check_lists, _check_env,
    _check_python,
)


def _build(data: dict[str, Any], path: Path) -> JobSpec:
    workers = data.get("num_workers", 1)
    kv = KVStore(data.get("kvstore", KVStore.DIST_SYNC.value))
    servers = data.get("num_servers", workers if kv.distributed else 0)
    return JobSpec(
        name=data["name"],
        script=data["script"],
        workdir=(path.resolve().parent / data.get("workdir", ".")).resolve(),
        num_workers=workers,
        num_servers=servers,
        engine=Engine(data.get("engine", Engine.MXNET.value)),
        kvstore=kv,
        args=[str(a) for a in data.get("args") or []],
        gpus_per_worker=data.get("gpus_per_worker", 0),
        omp_threads=data.get("omp_threads", 0),
        env={k: _env_value(v) for k, v in (data.get("env") or {}).items()},
        setup=list(data.get("setup") or []),
        timeout=data.get("timeout", 0),
        results=list(data.get("results") or []),
        python=data.get("python", "python3"),
        python_given="python" in data,
        source=str(path),
    )


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
