"""A stand-in training script for runner tests: behaves per TEST_MODE, no MXNet."""
import os
import signal
import sys
import time

role = os.environ["DMLC_ROLE"]
rank = os.environ["DLCFN_RANK"]
mode = os.environ.get("TEST_MODE", "ok")
name = f"{role}-{rank}"
print(f"hello from {name} on {os.environ.get('DMLC_NODE_HOST')}", flush=True)
os.makedirs("out", exist_ok=True)
with open(f"out/{name}.txt", "w") as f:
    f.write(f"{name} {os.environ.get('OMP_NUM_THREADS')}\n")
if role == "worker" and rank == "1":
    if mode == "exit3":
        time.sleep(0.5)
        for i in range(12):
            print(f"step {i} loss {1.0 / (i + 1):.3f}")
        sys.stdout.flush()
        sys.exit(3)
    if mode == "selfkill":
        os.kill(os.getpid(), signal.SIGKILL)
if mode in ("hang", "exit3", "selfkill") or (mode == "hang_worker" and role == "worker"):
    time.sleep(600)  # a rank that waits forever, like ps-lite peers of a dead rank
if mode == "wait_file":
    while not os.path.exists(os.environ["TEST_FILE"]):
        time.sleep(0.05)
