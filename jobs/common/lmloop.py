"""The language-model training loop shared by the data-parallel and model-parallel jobs.

The loop owns epochs, the batch plan and its sharding, throughput and padding accounting,
validation, LR decay / early stopping, checkpoints, averaging and ``metrics.json``.
A ``LMModel`` adapter owns how a batch goes through the network (which devices).
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from common import checkpoint
from common.buckets import BatchArrays, BucketedData
from common.lmflags import LMData
from common.metrics import MetricsWriter
from common.optim import Plateau
from common.runtime import Runtime, allreduce_sums
from common.sharding import shard_all, shard_evenly

# kvstore keys for loop statistics, far above any trainer's parameter indices.
_TRAIN_KEY, _VALID_KEY = 1_000_001, 1_000_002


class LMModel(Protocol):
    def train_batch(self, arrays: BatchArrays) -> tuple[object, float]:
        """Forward, backward, clip, update; returns (summed NLL, grad norm), both NDArrays
        (not read back per batch: reading waits for the computation)."""

    def eval_batch(self, arrays: BatchArrays) -> object:
        """Summed NLL of the batch (NDArray), no gradient."""

    def set_learning_rate(self, lr: float) -> None: ...

    def save(self, stem_dir: Path, epoch: int, meta: dict) -> Path: ...

    def load(self, stem: Path) -> dict: ...

    def average(self, stems: list[Path]) -> None: ...

    def save_final(self, path: Path) -> None: ...


@dataclass
class EpochTotals:
    nll: float = 0.0
    real_tokens: int = 0
    positions: int = 0
    batches: int = 0
    grad_norms: list = field(default_factory=list)  # NDArrays until the epoch ends


def train_epoch(model: LMModel, data: BucketedData, args: argparse.Namespace, runtime: Runtime,
                epoch: int) -> tuple[EpochTotals, float]:
    plan = data.plan(args.batch_size, seed=args.seed * 1000 + epoch)
    mine = shard_evenly(plan, runtime.rank, runtime.num_workers)
    pad_to = data.buckets[-1] if args.pad_to_max else None
    totals, pending = EpochTotals(), []
    start = time.perf_counter()
    for batch in mine:
        arrays = data.arrays(batch, pad_to)
        nll, norm = model.train_batch(arrays)
        pending.append(nll)
        totals.real_tokens += arrays.real_tokens
        totals.positions += arrays.positions
        totals.batches += 1
        totals.grad_norms.append(norm)
        if len(pending) > 1:
            # Let Python run one batch ahead of the engine, no further: unbounded, it would
            # queue the whole epoch and compete with the engine for the cores.
            pending[-2].wait_to_read()
    totals.nll = sum(float(x.asscalar()) for x in pending)  # waits for the last batch
    totals.grad_norms = [float(n.asscalar()) for n in totals.grad_norms]
    return totals, time.perf_counter() - start


def evaluate(model: LMModel, data: BucketedData, args: argparse.Namespace, runtime: Runtime) -> float:
    """Perplexity over the whole split, shared out among workers and summed back."""
    plan = data.plan(args.batch_size, seed=0, shuffle=False)
    pad_to = data.buckets[-1] if args.pad_to_max else None
    nll, tokens = 0.0, 0
    mine = shard_all(plan, runtime.rank, runtime.num_workers) if runtime.shares_evaluation else plan
    for batch in mine:
        arrays = data.arrays(batch, pad_to)
        nll += float(model.eval_batch(arrays).asscalar())
        tokens += arrays.real_tokens
    nll, tokens = allreduce_sums(runtime, [nll, tokens], _VALID_KEY)
    return math.exp(nll / max(tokens, 1))


def run(model: LMModel, data: LMData, args: argparse.Namespace, runtime: Runtime,
        metrics: MetricsWriter, ckpt_dir: Path) -> None:
    plateau = Plateau(lr=args.lr, decay=args.lr_decay, patience=args.patience)
    first_epoch, stems = 1, []
    if args.resume:
        meta = model.load(checkpoint.resolve(args.resume))
        first_epoch = meta["epoch"] + 1
        plateau = Plateau(lr=meta["lr"], decay=args.lr_decay, patience=args.patience,
                          best=meta["best"], bad_epochs=meta["bad_epochs"])
        model.set_learning_rate(plateau.lr)
        metrics.keep_history(before_epoch=first_epoch)
    else:
        metrics.log_epoch({"epoch": 0, "valid_ppl": evaluate(model, data.valid, args, runtime)})
    stop = False
    for epoch in range(first_epoch, args.epochs + 1):
        totals, seconds = train_epoch(model, data.train, args, runtime, epoch)
        valid_ppl = evaluate(model, data.valid, args, runtime)
        lr_used = plateau.lr
        improved, stop = plateau.observe(valid_ppl)
        model.set_learning_rate(plateau.lr)
        metrics.log_epoch(_epoch_record(epoch, totals, seconds, valid_ppl, lr_used, runtime))
        if runtime.rank == 0:
            meta = {"lr": plateau.lr, "best": plateau.best, "bad_epochs": plateau.bad_epochs,
                    "valid_ppl": valid_ppl, "improved": improved}
            stems.append(model.save(ckpt_dir, epoch, meta))
        if stop:
            break
    metrics.final.update({"valid_ppl": metrics.epochs[-1]["valid_ppl"], "best_valid_ppl": plateau.best,
                          "stopped_early": stop,
                          "epochs_run": sum(1 for e in metrics.epochs if e["epoch"] > 0)})
    if runtime.rank == 0 and args.checkpoint_avg > 1 and len(stems) > 1:
        model.average(stems[-args.checkpoint_avg:])
        # Rank 0 alone: evaluate locally (no kvstore call the other ranks would have to match).
        solo = Runtime("local", None, 0, 1, runtime.contexts)
        metrics.final["averaged_last"] = len(stems[-args.checkpoint_avg:])
        metrics.final["averaged_valid_ppl"] = evaluate(model, data.valid, args, solo)
        # Back to the trained parameters (the last checkpoint), so final.params is the same on
        # every worker; the average is only an evaluation.
        model.average(stems[-1:])
    metrics.write()


def _epoch_record(epoch: int, totals: EpochTotals, seconds: float, valid_ppl: float, lr: float,
                  runtime: Runtime) -> dict:
    nll, tokens, positions, secs = allreduce_sums(
        runtime, [totals.nll, totals.real_tokens, totals.positions, seconds], _TRAIN_KEY)
    norms = totals.grad_norms or [0.0]
    return {
        "epoch": epoch,
        "train_ppl": math.exp(nll / max(tokens, 1)),
        "valid_ppl": valid_ppl,
        "real_tokens_per_s": totals.real_tokens / seconds,
        "padded_positions_per_s": totals.positions / seconds,
        # Sum of every worker's rate (seconds summed: mean epoch time across workers).
        "cluster_real_tokens_per_s": tokens / (secs / runtime.num_workers),
        "pad_fraction": 1.0 - totals.real_tokens / max(totals.positions, 1),
        "grad_norm_mean": sum(norms) / len(norms),
        "grad_norm_max": max(norms),
        "lr": lr,
        "batches": totals.batches,
        "time_s": seconds,
    }
