"""dist_async: the servers apply every push as it arrives (an SGD step here, lr 1, so weight -=
gradient) instead of waiting for all workers. Each worker pushes (rank + 1) * ones once, waits
until its push is applied and then at a barrier for the others, then pulls: every worker must read
-sum(rank + 1 for every rank), whatever order the pushes arrived in (plain SGD steps commute)."""
import os

from report import report

import mxnet as mx  # on a server or scheduler process this import runs its kvstore loop and exits

kv = mx.kv.create(os.environ["DLCFN_KVSTORE"])
assert kv.type == "dist_async", kv.type
kv.set_optimizer(mx.optimizer.SGD(learning_rate=1.0, rescale_grad=1.0, wd=0.0, momentum=0.0))
shape = (4, 5)
kv.init(7, mx.nd.zeros(shape))
kv.push(7, mx.nd.ones(shape) * (kv.rank + 1))
# A push returns at once; its engine operation completes when the server has applied it and
# answered. Only then the barrier: once every worker has passed it, every push has been applied.
mx.nd.waitall()
kv._barrier()
weight = mx.nd.zeros(shape)
kv.pull(7, out=weight)
report(kv, "weight", weight)
