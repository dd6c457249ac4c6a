"""Optimisation helpers shared by the jobs: optimiser choice, gradient clipping with the
norm reported, plateau control (LR decay + early stopping), LR schedules (step/cosine + warm-up).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mxnet as mx
from mxnet import gluon

OPTIMIZERS = ("adam", "sgd", "nag")


def make_trainer(params, optimizer: str, lr: float, runtime, momentum: float = 0.9,
                 wd: float = 0.0) -> gluon.Trainer:
    """A Trainer that reduces gradients on the kvstore and updates locally (so gradients can
    be clipped after the reduce), except under ``dist_async`` where the servers must update."""
    opts = {"learning_rate": lr, "wd": wd}
    if optimizer in ("sgd", "nag"):
        opts["momentum"] = momentum
    return gluon.Trainer(params, optimizer, opts, kvstore=runtime.trainer_kvstore,
                         update_on_kvstore=None if runtime.distributed and not runtime.synchronous else False)


def sync_initial_parameters(trainer: gluon.Trainer) -> None:
    """Make every worker start from rank 0's parameters before the first forward pass.

    Gluon would do it lazily at the first ``step``; by then a worker has already run
    forward passes (the epoch-0 validation) on its own initial values, and CPU RNN kernels
    that cache their weights can keep using those. Gluon has no public call for this.
    """
    trainer._init_kvstore()
    trainer._init_params()


def step_scale(runtime) -> int:
    """Each worker's loss is a batch mean; a synchronous kvstore sums the workers' gradients."""
    return runtime.num_workers if runtime.distributed and runtime.synchronous else 1


def clip_and_step(trainer: gluon.Trainer, params, max_norm: float, scale: int):
    """Reduce, measure the global gradient norm, clip it to ``max_norm`` (0: no clipping),
    update. Returns the norm before clipping, of the gradient the optimiser sees, as an
    NDArray of shape (1,): nothing here waits for the batch to finish (reading the norm
    would), so Python prepares the next batch while the engine computes this one."""
    if trainer._update_on_kvstore if trainer._kv_initialized else False:
        # dist_async: the servers update, so clip this worker's own gradient before pushing.
        norm = _clip(params, max_norm, scale=1)
        trainer.step(scale)
        return norm
    trainer.allreduce_grads()
    norm = _clip(params, max_norm, scale)
    trainer.update(scale)
    return norm


def clip_global_norm(params, max_norm: float):
    """Model parallel: one gradient spread over devices; clip its norm as a whole."""
    return _clip(params, max_norm, 1, replicas=False)


def _clip(params, max_norm: float, scale: int, replicas: bool = True):
    """Data parallel (``replicas``): every context holds a full copy of the gradient; clip
    each copy on its own. Otherwise the contexts hold disjoint parts of one gradient."""
    grads_by_ctx: dict = {}
    for p in params.values():
        if p.grad_req != "null":
            for g in p.list_grad():
                grads_by_ctx.setdefault(g.context, []).append(g)
    # One fused kernel per device (multi_sum_sq): ten times faster than sum(g * g) per array.
    squares = {ctx: mx.nd.multi_sum_sq(*grads, num_arrays=len(grads)).sum()
               for ctx, grads in grads_by_ctx.items()}
    if replicas:
        groups = [(mx.nd.sqrt(sq) / scale, grads_by_ctx[ctx]) for ctx, sq in squares.items()]
    else:
        first = next(iter(squares))
        total = mx.nd.add_n(*[sq.as_in_context(first) for sq in squares.values()])
        groups = [(mx.nd.sqrt(total) / scale, [g for gs in grads_by_ctx.values() for g in gs])]
    if max_norm:
        for norm, grads in groups:
            factor = mx.nd.minimum(max_norm / (norm + 1e-12), 1.0)  # stays on the device: no sync
            per_ctx = {}
            for g in grads:
                f = per_ctx.setdefault(g.context, factor.as_in_context(g.context))
                mx.nd.broadcast_mul(g, f, out=g)
    return groups[0][0]


@dataclass
class Plateau:
    """Decay the learning rate when validation stops improving; stop after ``patience``
    epochs without improvement (0: never stop early)."""

    lr: float
    decay: float = 0.5
    patience: int = 3
    min_delta: float = 0.0
    best: float = math.inf
    bad_epochs: int = 0

    def observe(self, metric: float) -> tuple[bool, bool]:
        """Record this epoch's validation metric (lower is better): (improved, stop)."""
        if metric < self.best * (1.0 - self.min_delta):
            self.best, self.bad_epochs = metric, 0
            return True, False
        self.bad_epochs += 1
        self.lr *= self.decay
        return False, bool(self.patience) and self.bad_epochs >= self.patience


def scheduled_lr(base_lr: float, progress: float, total_epochs: int, schedule: str,
                 warmup_epochs: float = 0.0, steps: tuple[int, ...] = (), factor: float = 0.1) -> float:
    """LR at ``progress`` epochs (fractional): linear warm-up, then step or cosine decay."""
    if warmup_epochs and progress < warmup_epochs:
        return base_lr * (progress + 1e-8) / warmup_epochs
    if schedule == "cosine":
        span = max(total_epochs - warmup_epochs, 1e-8)
        return 0.5 * base_lr * (1 + math.cos(math.pi * min(1.0, (progress - warmup_epochs) / span)))
    if schedule == "step":
        return base_lr * factor ** sum(progress >= s for s in steps)
    return base_lr
