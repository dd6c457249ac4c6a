"""EC2 UserData for cluster nodes: a bash script that unpacks and runs `bootstrap.py`.

The script is a CloudFormation `Fn::Sub` string: `${Name}` placeholders (see
`userdata_variables`) plus the pseudo parameters `${AWS::Region}` and `${AWS::StackName}`.
The bash is written without any other `${`, so nothing needs the `${!` escape. The bootstrap
source travels as base64 of gzip (deterministic: mtime=0), which keeps it under the 16 KB
UserData limit and free of characters that Fn::Sub or bash would interpret. The template does
`Base64(Sub(render_userdata(role), {name: ... for name in userdata_variables(role)}))`.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

MASTER = "master"
WORKER = "worker"
ROLES = (MASTER, WORKER)

# Where the node keeps its copy of the bootstrap, its config and its log.
INSTALL_DIR = "/opt/dlcfn"
LOG_FILE = "/var/log/dlcfn-bootstrap.log"
# The interpreter of the virtualenv the bootstrap installs the framework into
# (bootstrap.Config.framework_venv, see node_python).
FRAMEWORK_PYTHON = INSTALL_DIR + "/venv/bin/python"
# "ready" once the node can run jobs, "failed: <reason>" when it never will (bootstrap.Config.state_file).
NODE_STATE_FILE = INSTALL_DIR + "/node-state"

# Interpreters tried in order: the first that can import boto3 runs the bootstrap. The Deep
# Learning AMIs ship boto3 in their conda/venv Pythons; the system Python may lack it.
PYTHON_CANDIDATES = (
    "/usr/bin/python3",
    "/opt/conda/bin/python3",
    "/home/ubuntu/anaconda3/bin/python3",
    "/home/ec2-user/anaconda3/bin/python3",
    "/usr/local/bin/python3",
)

_COMMON = ("MasterQueueUrl", "WorkerQueueUrl", "WaitHandleUrl", "FileSystemId", "ReadyTimeout", "GpuFrameworkPackages",
           "CpuFrameworkPackages")
_VARIABLES = {MASTER: _COMMON + ("WorkerGroupName", "MinWorkers"), WORKER: _COMMON}


def userdata_variables(role: str) -> tuple[str, ...]:
    """The non-pseudo `${Name}` placeholders that `render_userdata(role)` uses."""
    return _VARIABLES[_check_role(role)]


def node_python(gpu_packages: str, cpu_packages: str) -> str:
    """The Python jobs run with on nodes booted with these framework lists (the stack's
    GpuFrameworkPackages and CpuFrameworkPackages), as bootstrap.install_framework decides it.

    Derived by the client from the stack's parameters rather than read from a template Output:
    a stack from before the parameters existed then simply means python3, and the template
    keeps its bytes for the 51,200-byte TemplateBody limit it is close to.
    """
    return FRAMEWORK_PYTHON if (gpu_packages.split() or cpu_packages.split()) else "python3"


def bootstrap_source() -> bytes:
    return Path(__file__).with_name("bootstrap.py").read_bytes()


def bootstrap_blob() -> str:
    """base64(gzip(bootstrap.py)), wrapped at 76 columns like `base64` does."""
    packed = base64.b64encode(gzip.compress(bootstrap_source(), mtime=0)).decode("ascii")
    return "\n".join(packed[i : i + 76] for i in range(0, len(packed), 76))


def node_config(role: str) -> dict[str, object]:
    """The JSON config the script writes for bootstrap.py, with placeholders for Fn::Sub."""
    config: dict[str, object] = {
        "region": "${AWS::Region}",
        "stack_name": "${AWS::StackName}",
        "master_queue_url": "${MasterQueueUrl}",
        "worker_queue_url": "${WorkerQueueUrl}",
        "wait_handle_url": "${WaitHandleUrl}",
        "file_system_id": "${FileSystemId}",
        "ready_timeout_s": "${ReadyTimeout}",  # discovery gives up (and says why) before the stack does
        # The node picks one list by its GPU count (see bootstrap.install_framework).
        "gpu_framework_packages": "${GpuFrameworkPackages}",
        "cpu_framework_packages": "${CpuFrameworkPackages}",
    }
    if role == MASTER:
        # One entry per Auto Scaling group the master waits for; a master group would add one.
        config["wait_groups"] = ["${WorkerGroupName}"]
        config["min_workers"] = "${MinWorkers}"
    return config


def render_userdata(role: str) -> str:
    """The UserData bash script for `role` ("master" or "worker"), before Fn::Sub."""
    role = _check_role(role)
    candidates = " ".join(PYTHON_CANDIDATES)
    config = json.dumps(node_config(role), indent=2, sort_keys=True)
    return f"""#!/bin/bash
# dlcfn node bootstrap, role {role}: unpack bootstrap.py, write its config, run it.
# Its log: {LOG_FILE}. Rendered by dlcfn.node.userdata.
set -uo pipefail
exec >>{LOG_FILE} 2>&1
ROLE={role}
DIR={INSTALL_DIR}
HANDLE_URL='${{WaitHandleUrl}}'

fail() {{
  # Only when Python cannot start: tell CloudFormation now rather than after the timeout.
  body=$(printf '{{"Status":"FAILURE","Reason":"dlcfn bootstrap on %s (%s): %s","UniqueId":"%s","Data":""}}' "$(hostname)" "$ROLE" "$1" "$(hostname)")
  curl -sS --retry 3 -X PUT -H 'Content-Type:' --data-binary "$body" "$HANDLE_URL" || true
  exit 1
}}

install -d -m 0755 "$DIR" || fail "cannot create $DIR"
base64 -d >"$DIR/bootstrap.py.gz" <<'DLCFN_BOOTSTRAP' || fail "cannot decode bootstrap.py"
{bootstrap_blob()}
DLCFN_BOOTSTRAP
gunzip -f "$DIR/bootstrap.py.gz" || fail "cannot unpack bootstrap.py"
cat >"$DIR/config.json" <<'DLCFN_CONFIG'
{config}
DLCFN_CONFIG

PY=
for c in {candidates}; do
  if [ -x "$c" ] && "$c" -c 'import boto3' 2>/dev/null; then PY=$c; break; fi
done
if [ -z "$PY" ]; then
  # No Python with boto3: install it from the distribution, else from PyPI.
  if command -v apt-get >/dev/null; then a="apt-get -q -o DPkg::Lock::Timeout=600"; $a update && $a install -y python3-boto3
  elif command -v dnf >/dev/null; then dnf install -y -q python3-boto3
  elif command -v yum >/dev/null; then yum install -y -q python3-boto3
  fi
  /usr/bin/python3 -c 'import boto3' 2>/dev/null || /usr/bin/python3 -m pip install -q boto3
  /usr/bin/python3 -c 'import boto3' 2>/dev/null || fail "no python3 with boto3 on this AMI"
  PY=/usr/bin/python3
fi
"$PY" "$DIR/bootstrap.py" --role "$ROLE" --config "$DIR/config.json"
rc=$?
# 3: bootstrap.py failed and signalled the reason itself; anything else non-zero: it could not.
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then fail "bootstrap.py exited with status $rc, see {LOG_FILE}"; fi
exit "$rc"
"""


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role
