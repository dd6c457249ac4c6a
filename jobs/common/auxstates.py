"""Parameters without gradients (BatchNorm running mean/var) kept the same on every replica.

Data parallel training keeps the weights identical (reduced gradients, same updates), but
BatchNorm's running statistics are updated by each replica's forward passes on its own
batches: left alone they drift apart per context and per worker, so validation and the saved
parameters depend on which replica you read. Averaging them is the usual remedy (a mean of
per-replica variances, not the pooled variance; close enough for running estimates).
"""
from __future__ import annotations

from typing import Any


def aux_parameters(params) -> list[Any]:
    """The parameters no optimiser touches (``grad_req == 'null'``), in a fixed order."""
    return [p for _, p in sorted(params.items()) if p.grad_req == "null"]


def average_aux_states(params, runtime, key_base: int) -> int:
    """Replace every aux parameter on every context by its mean over contexts and, under a
    synchronous dist kvstore, over workers (push/pull on keys ``key_base + i``: pick a base
    far from the trainer's parameter indices, below 215,000: MXNet computes key * 9973 in an
    int to pick the server). Every worker gets the same bits back.
    Returns how many parameters were averaged."""
    import mxnet as mx

    aux = aux_parameters(params)
    means = [_context_mean(mx, p.list_data()) for p in aux]
    if aux and runtime.distributed and runtime.synchronous:
        means = _worker_mean(mx, runtime, means, key_base)
    for p, mean in zip(aux, means):
        p.set_data(mean)  # copies into each context's array: hybridized graphs keep their buffers
    return len(aux)


def _context_mean(mx, arrays: list):
    if len(arrays) == 1:
        return arrays[0].copy()
    first = arrays[0].context
    return mx.nd.add_n(*[a.as_in_context(first) for a in arrays]) / len(arrays)


def _worker_mean(mx, runtime, arrays: list, key_base: int) -> list:
    keys = [key_base + i for i in range(len(arrays))]
    fresh = [i for i, k in enumerate(keys) if k not in runtime.reduce_keys]
    if fresh:  # every worker reaches this at the same point: init is a barrier
        runtime.kv.init([keys[i] for i in fresh], [mx.nd.zeros_like(arrays[i]) for i in fresh])
        runtime.reduce_keys.update(keys[i] for i in fresh)
    sums = [mx.nd.zeros_like(a) for a in arrays]
    runtime.kv.push(keys, arrays)
    runtime.kv.pull(keys, out=sums)
    return [s / runtime.num_workers for s in sums]
