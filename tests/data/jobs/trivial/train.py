"""A stand-in training script for runner tests (no MXNet): every rank says hello and writes
out/<role>-<rank>.txt; TEST_MODE picks a failure: exit3 (worker 1 logs 12 steps, exits 3),
hang (every rank waits forever, like ps-lite peers of a dead rank)."""
import os
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
if mode == "exit3" and name == "worker-1":
    time.sleep(0.5)
    for i in range(12):
        print(f"step {i} loss {1.0 / (i + 1):.3f}")
    sys.stdout.flush()
    sys.exit(3)
if mode in ("hang", "exit3"):
    time.sleep(600)
