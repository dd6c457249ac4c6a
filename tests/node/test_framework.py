"""The bootstrap's framework step with real commands: `python -m venv`, `pip install` from a local
directory of wheels written by hand here (`--no-index --find-links`: nothing touches the network),
and the import check in the venv's own Python."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dlcfn.node import bootstrap, userdata
from dlcfn.node.bootstrap import BootstrapFailure, Config, Member, Node, Seams
from dlcfn.node.events import SignalReceiver

MODULE = "dlcfn_probe"  # what both wheels provide, as mxnet-cu112 and mxnet both provide mxnet
GPU_LIST = "dlcfn-probe-gpu==1.0"
CPU_LIST = "dlcfn-probe-cpu==1.0"


def write_wheel(directory: Path, dist: str, version: str, files: dict[str, str]) -> Path:
    """A minimal pure-Python wheel (METADATA, WHEEL, RECORD with hashes), as pip expects one."""
    tag = dist.replace("-", "_")
    info = f"{tag}-{version}.dist-info"
    files = {**files,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: dlcfn-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    path = directory / f"{tag}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in {**files, f"{info}/RECORD": "\n".join(record) + "\n"}.items():
            whl.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wheels")
    for dist, kind in (("dlcfn-probe-gpu", "gpu"), ("dlcfn-probe-cpu", "cpu")):
        write_wheel(directory, dist, "1.0", {f"{MODULE}/__init__.py": f"KIND = {kind!r}\n"})
    return directory


class Runs:
    """The real command seam, with every command it ran kept."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, cmd: list, timeout: float) -> None:
        self.commands.append([str(c) for c in cmd])
        bootstrap.run_tool(cmd, timeout)

    def pip_runs(self) -> int:
        return sum(1 for c in self.commands if c[1:4] == ["-m", "pip", "install"])


def framework_config(root: Path, wheels: Path, **overrides: object) -> Config:
    values: dict = dict(role=bootstrap.WORKER, region="us-east-1", root=str(root), gpu_framework_packages=GPU_LIST,
                        cpu_framework_packages=CPU_LIST, framework_module=MODULE, venv_python=sys.executable,
                        pip_options=["--no-index", "--find-links", str(wheels)], pip_attempts=3, pip_backoff_s=0.01,
                        discovery_timeout_s=300)
    values.update(overrides)
    return Config.from_dict(values)


def node_for(config: Config, gpus: int, runs: Runs) -> Node:
    node = Node(config=config, seams=Seams(run=runs, sleep=lambda s: None))
    node.gpus = gpus
    return node


def venv_says(python: str, code: str) -> str:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.fixture(scope="module")
def cpu_node(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> tuple[Path, Runs, str]:
    """One real boot of a node without GPUs: venv created, CPU list installed, import checked.
    The other tests start from copies of its venv (creating one takes seconds)."""
    root, runs = tmp_path_factory.mktemp("cpu-node"), Runs()
    python = bootstrap.install_framework(node_for(framework_config(root, wheels), 0, runs))
    return root, runs, python


def copy_venv(made: Path, root: Path) -> None:
    shutil.copytree(made / "opt", root / "opt", symlinks=True)


def test_node_without_gpus_creates_the_venv_and_installs_the_cpu_list(cpu_node: tuple[Path, Runs, str]) -> None:
    root, runs, python = cpu_node
    assert python == str(root / "opt/dlcfn/venv/bin/python") and python.endswith(userdata.FRAMEWORK_PYTHON)
    assert [c[1:3] for c in runs.commands] == [["-m", "venv"], ["-m", "pip"], ["-c", f"import {MODULE}"]]
    assert runs.commands[1][-1] == CPU_LIST and "--find-links" in runs.commands[1]
    assert venv_says(python, f"import {MODULE}; print({MODULE}.KIND)") == "cpu"


def test_gpu_node_installs_the_gpu_list_into_the_existing_venv(cpu_node: tuple[Path, Runs, str], tmp_path: Path, wheels: Path) -> None:
    copy_venv(cpu_node[0], tmp_path)
    sentinel = tmp_path / "opt/dlcfn/venv/sentinel"  # `venv --clear` would remove it
    sentinel.write_text("")
    config = framework_config(tmp_path, wheels)
    for run in (1, 2):  # the second run: pip finds the requirement satisfied
        runs = Runs()
        python = bootstrap.install_framework(node_for(config, 4, runs))
        assert runs.pip_runs() == 1 and runs.commands[0][-1] == GPU_LIST and not any(c[1:3] == ["-m", "venv"] for c in runs.commands)
        assert venv_says(python, f"import {MODULE}; print({MODULE}.KIND)") == "gpu" and sentinel.exists()
    # A wheel that installs but does not import fails the boot here, not the first job.
    broken = framework_config(tmp_path, wheels, framework_module="dlcfn_missing")
    with pytest.raises(BootstrapFailure, match=f"import dlcfn_missing failed after pip install {GPU_LIST}: exit 1: "
                                               "ModuleNotFoundError: No module named 'dlcfn_missing'"):
        bootstrap.install_framework(node_for(broken, 4, Runs()))


def test_empty_lists_install_nothing(tmp_path: Path, wheels: Path) -> None:
    runs = Runs()
    config = framework_config(tmp_path, wheels, gpu_framework_packages="", cpu_framework_packages=" ")
    assert bootstrap.install_framework(node_for(config, 8, runs)) == "python3"
    assert runs.commands == [] and not (tmp_path / "opt").exists()
    assert userdata.node_python("", " ") == "python3" and userdata.node_python("", CPU_LIST) == userdata.FRAMEWORK_PYTHON


def test_node_with_an_empty_list_gets_a_venv_of_the_system_packages(tmp_path: Path, wheels: Path) -> None:
    """The other list is set, so jobs are told the venv's python: it must exist here too."""
    runs = Runs()
    python = bootstrap.install_framework(node_for(framework_config(tmp_path, wheels, gpu_framework_packages=""), 2, runs))
    assert runs.pip_runs() == 0 and "--system-site-packages" in runs.commands[0]
    assert venv_says(python, "import sys; print(sys.prefix)") == str(tmp_path / "opt/dlcfn/venv")


def test_failed_install_is_retried_then_signalled(aws, receiver: SignalReceiver, cpu_node: tuple[Path, Runs, str], tmp_path: Path,
                                                 wheels: Path) -> None:
    """A package the wheel directory lacks: 3 attempts with doubling backoff, then FAILURE naming
    the node, the step, and pip's last error line with the package."""
    copy_venv(cpu_node[0], tmp_path)
    runs, sleeps = Runs(), []
    config = framework_config(tmp_path, wheels, cpu_framework_packages="dlcfn-no-such-package==9.9", wait_handle_url=receiver.url,
                              instance_id="i-0123456789abcdef0", private_ip="10.0.1.9")
    result = bootstrap.run_bootstrap(config, Seams(run=runs, sleep=sleeps.append, gpu_count=lambda: 0))
    assert not result.ok and runs.pip_runs() == 3 and sleeps == [0.01, 0.02]
    assert result.reason.startswith("dlcfn bootstrap on worker i-0123456789abcdef0 (10.0.1.9), step framework install: "
                                    "pip install dlcfn-no-such-package==9.9 failed 3 times: exit 1: ERROR: ")
    assert "dlcfn-no-such-package" in result.reason.rsplit("ERROR:", 1)[1]
    [signal] = receiver.signals
    assert signal.body["Status"] == "FAILURE" and signal.body["Reason"] == result.reason


def test_install_gives_up_when_the_discovery_window_is_spent(tmp_path: Path, wheels: Path) -> None:
    """No retry starts once the window would be over: the node still signals before the stack times out."""
    now = [0.0]
    runs = Runs()

    def failing(cmd: list, timeout: float) -> None:
        runs.commands.append(cmd)
        now[0] += 200  # each attempt takes 200 s of a 300 s window
        raise OSError("exit 1: ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device")

    (tmp_path / "opt/dlcfn/venv/bin").mkdir(parents=True)
    (tmp_path / "opt/dlcfn/venv/bin/pip").write_text("")  # a venv from an earlier run: only pip runs
    node = Node(config=framework_config(tmp_path, wheels, pip_attempts=10), seams=Seams(run=failing, sleep=lambda s: None,
                                                                                       clock=lambda: now[0]))
    with pytest.raises(BootstrapFailure, match="failed 2 times: .*No space left on device"):
        bootstrap.install_framework(node)
    assert len(runs.commands) == 2


def test_profile_puts_the_venv_first_on_path(tmp_path: Path) -> None:
    config = Config(role=bootstrap.MASTER, region="us-east-1", root=str(tmp_path))
    me = Member("master", bootstrap.MASTER, "i-1", "10.0.0.1", 0)
    python = str(tmp_path / "opt/dlcfn/venv/bin/python")
    profile = tmp_path / "dlcfn.sh"
    for venv_python, path in ((python, f"{tmp_path}/opt/dlcfn/venv/bin:/usr/bin:/bin"), ("python3", "/usr/bin:/bin")):
        profile.write_text(bootstrap.render_env_profile(config, me, [me], venv_python))
        env = subprocess.run(["bash", "-c", f'PATH=/usr/bin:/bin; source "{profile}"; echo "$DLCFN_PYTHON|$PATH"'],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        assert env == f"{venv_python}|{path}"
