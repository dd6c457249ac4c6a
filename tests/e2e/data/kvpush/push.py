"""Each worker pushes (rank + 1) * arange(6) to one dist_sync key and pulls the aggregate; with
no optimizer the servers keep the sum, so every worker must read n(n+1)/2 * arange(6) for n
workers. Written to out/worker-<rank>.json (collected by `dlcfn submit`)."""
import json
import os

import mxnet as mx  # on a server or scheduler this import runs its kvstore loop and exits

kv = mx.kv.create(os.environ["DLCFN_KVSTORE"])
base = mx.nd.arange(6).reshape((2, 3))
kv.init(3, mx.nd.zeros((2, 3)))
kv.push(3, base * (kv.rank + 1))
total = mx.nd.zeros((2, 3))
kv.pull(3, out=total)
os.makedirs("out", exist_ok=True)
with open(f"out/worker-{kv.rank}.json", "w") as f:
    json.dump({"rank": kv.rank, "num_workers": kv.num_workers, "host": os.environ.get("DLCFN_NODE_ROOT", ""),
               "sum": total.asnumpy().tolist()}, f)
print(f"worker {kv.rank}/{kv.num_workers} pulled {total.asnumpy().ravel().tolist()}", flush=True)
