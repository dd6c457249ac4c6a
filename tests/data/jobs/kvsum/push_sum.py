"""Each worker pushes (rank + 1) * ones to one key of a dist kvstore, pulls the aggregate and
writes it to out/worker-<rank>.json. With no optimizer set, the servers keep the sum of the
pushes, so every worker must read sum(rank + 1 for every rank)."""
import os

from report import report

import mxnet as mx  # on a server or scheduler process this import runs its kvstore loop and exits

kv = mx.kv.create(os.environ["DLCFN_KVSTORE"])
shape = (4, 5)
kv.init(7, mx.nd.zeros(shape))
kv.push(7, mx.nd.ones(shape) * (kv.rank + 1))
total = mx.nd.zeros(shape)
kv.pull(7, out=total)
report(kv, "sum", total)
