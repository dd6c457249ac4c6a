"""Model-parallel LSTM language model: contiguous groups of layers on different devices.

Placement balances an estimate of each layer's work (multiply-adds per token): the
embedding rides with the first LSTM layer and the decoder with the last, so neither sits
on a device of its own. Activations cross devices between stages; with several
micro-batches, MXNet's per-device engines run stage k of one micro-batch while stage k+1
runs the previous one (a pipeline). Each stage is hybridized: one cached graph per
bucket shape. Parameters are initialised on ``cpu(0)`` with the run's seed and then moved,
so a placement never changes the starting point (the single-device run is the reference).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
from mxnet import gluon

from common.lm import LMConfig, LMStage, apply_gate_biases
from common.optim import clip_global_norm


def layer_costs(cfg: LMConfig) -> list[float]:
    """Multiply-adds per token of each LSTM layer, embedding/decoder folded into the ends."""
    gates = 4 if cfg.cell == "lstm" else 3
    costs = [gates * cfg.hidden * ((cfg.embed if i == 0 else cfg.hidden) + cfg.hidden) for i in range(cfg.layers)]
    costs[-1] += cfg.hidden * cfg.vocab_size  # decoder (the softmax is of the same order)
    costs[0] += cfg.embed  # embedding lookup: a copy
    return costs


def balance(costs: list[float], parts: int) -> list[int]:
    """Split ``costs`` into ``parts`` contiguous non-empty groups minimising the largest
    group's sum; returns the group sizes. Exact (dynamic programming; a handful of layers)."""
    n = len(costs)
    if not 1 <= parts <= n:
        raise SystemExit(f"cannot place {n} layers on {parts} devices: need 1 <= devices <= --layers")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    best = {(0, 0): (0.0, [])}
    for k in range(1, parts + 1):
        for end in range(k, n - (parts - k) + 1):
            options = [(max(best[(k - 1, start)][0], prefix[end] - prefix[start]), best[(k - 1, start)][1] + [end - start])
                       for start in range(k - 1, end) if (k - 1, start) in best]
            best[(k, end)] = min(options)
    return best[(parts, n)][1]


@dataclass
class Placement:
    contexts: list
    layers_per_stage: list[int]

    def describe(self) -> list[dict]:
        first, rows = 0, []
        for i, (ctx, n) in enumerate(zip(self.contexts, self.layers_per_stage)):
            parts = (["embedding"] if i == 0 else []) + [f"lstm{j}" for j in range(first, first + n)]
            parts += ["decoder"] if i == len(self.contexts) - 1 else []
            rows.append({"stage": i, "device": str(ctx), "holds": parts})
            first += n
        return rows


class PipelineLM:
    """The ``LMModel`` adapter of the shared loop for a model split across devices."""

    def __init__(self, args: argparse.Namespace, cfg: LMConfig, placement: Placement):
        if cfg.unrolled:
            raise SystemExit("the model-parallel job uses the fused RNN op; drop --unrolled/--variational-dropout")
        self.args, self.cfg, self.placement = args, cfg, placement
        self.stages, first = [], 0
        last = len(placement.contexts) - 1
        for i, (ctx, n) in enumerate(zip(placement.contexts, placement.layers_per_stage)):
            stage = LMStage(cfg, first, n, embedding=i == 0, decoder=i == last, prefix=f"stage{i}_")
            stage.initialize(mx.init.Xavier(), ctx=mx.cpu(0))
            apply_gate_biases(stage, cfg)
            stage.collect_params().reset_ctx(ctx)
            stage.hybridize(static_alloc=True)
            self.stages.append(stage)
            first += n
        opts = {"learning_rate": args.lr, "wd": args.wd}
        if args.optimizer != "adam":
            opts["momentum"] = args.momentum
        # One trainer per device: Gluon wants all of a trainer's parameters on the same contexts.
        self.trainers = [gluon.Trainer(s.collect_params(), args.optimizer, opts, kvstore=None) for s in self.stages]
        self.all_params = {k: v for s in self.stages for k, v in s.collect_params().items()}

    def _forward(self, data, target, mask):
        ctxs = self.placement.contexts
        x = data.as_in_context(ctxs[0])
        for stage, ctx in zip(self.stages[:-1], ctxs):
            x = stage(x.as_in_context(ctx))
        return self.stages[-1](x.as_in_context(ctxs[-1]), target.as_in_context(ctxs[-1]),
                               mask.as_in_context(ctxs[-1]))

    def _chunks(self, arrays):
        parts = max(1, min(self.args.micro_batches, arrays.data.shape[1]))
        names = ("data", "target", "mask")
        full = [mx.nd.array(getattr(arrays, n)) for n in names] + [mx.nd.array(arrays.lengths)]
        split = [gluon.utils.split_data(a, parts, batch_axis=1 if i < 3 else 0, even_split=False)
                 for i, a in enumerate(full)]
        return list(zip(*split))

    def train_batch(self, arrays):
        batch, last = arrays.data.shape[1], self.placement.contexts[-1]
        nll_sums, losses = [], []
        with mx.autograd.record():
            for data, target, mask, lengths in self._chunks(arrays):
                nll = self._forward(data, target, mask)
                if self.args.loss_norm == "sentence":
                    losses.append((nll.sum(axis=0) / lengths.as_in_context(last)).sum() / batch)
                else:
                    losses.append(nll.sum() / arrays.real_tokens)
                nll_sums.append(nll.sum())
        mx.autograd.backward(losses)
        norm = clip_global_norm(self.all_params, self.args.clip)
        for trainer in self.trainers:
            trainer.step(1)
        return mx.nd.add_n(*nll_sums), norm

    def eval_batch(self, arrays):
        return mx.nd.add_n(*[self._forward(d, t, m).sum() for d, t, m, _ in self._chunks(arrays)])

    def set_learning_rate(self, lr: float) -> None:
        for trainer in self.trainers:
            trainer.set_learning_rate(lr)

    def save(self, directory: Path, epoch: int, meta: dict) -> Path:
        import json

        directory.mkdir(parents=True, exist_ok=True)
        stem = directory / f"epoch-{epoch:04d}"
        for i, (stage, trainer) in enumerate(zip(self.stages, self.trainers)):
            stage.save_parameters(f"{stem}.stage{i}.params")
            trainer.save_states(f"{stem}.stage{i}.states")
        Path(f"{stem}.params").write_text("")  # marks a complete checkpoint for --resume
        Path(f"{stem}.json").write_text(json.dumps({"epoch": epoch, **meta}, indent=1))
        return stem

    def load(self, stem: Path) -> dict:
        import json

        for i, (stage, trainer, ctx) in enumerate(zip(self.stages, self.trainers, self.placement.contexts)):
            stage.load_parameters(f"{stem}.stage{i}.params", ctx=ctx)
            trainer.load_states(f"{stem}.stage{i}.states")
        return json.loads(Path(f"{stem}.json").read_text())

    def average(self, stems: list[Path]) -> None:
        for i, stage in enumerate(self.stages):
            loaded = [mx.nd.load(f"{s}.stage{i}.params") for s in stems]
            for name, param in stage._collect_params_with_prefix().items():
                param.set_data(mx.nd.add_n(*[ld[name] for ld in loaded]) / len(loaded))

    def save_final(self, path: Path) -> None:
        for i, stage in enumerate(self.stages):
            stage.save_parameters(str(path.with_suffix(f".stage{i}.params")))
