"""Bucketed LSTM language model, data parallel over contexts and kvstore workers.

Runs the same way as one process (``--kvstore local``), under ``dlcfn submit`` and under
MXNet's ``tools/launch.py`` (``--kvstore dist_sync``: rank and worker count come from the
kvstore). One set of parameters serves every bucket length: the network is hybridized
once and MXNet caches one graph per bucket shape. Padding is masked out of the loss.
Writes ``<output>/rank-<r>/metrics.json``, ``checkpoints/`` (rank 0) and ``final.params``.
See jobs/README.md for the flags.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # jobs/: the shared `common` package

from common.lmflags import add_lm_flags, model_config, prepare_data  # noqa: E402
from common.metrics import MetricsWriter, rank_dir  # noqa: E402
from common.runtime import add_runtime_flags, configure_threads, create_runtime, parse_gpus, seed_everything  # noqa: E402


class DataParallelLM:
    """The whole model replicated on every context; each context takes a slice of the batch."""

    def __init__(self, args: argparse.Namespace, runtime, vocab_size: int):
        import mxnet as mx  # noqa: F401  (after configure_threads)

        from common.lm import build_full_model
        from common.optim import make_trainer, step_scale, sync_initial_parameters

        self.args, self.runtime = args, runtime
        self.cfg = model_config(args, vocab_size)
        self.net = build_full_model(self.cfg, runtime.contexts)
        self.params = self.net.collect_params()
        self.trainer = make_trainer(self.params, args.optimizer, args.lr, runtime, args.momentum, args.wd)
        self.scale = step_scale(runtime)
        sync_initial_parameters(self.trainer)

    def _split(self, arrays):
        import mxnet as mx

        ctxs = self.runtime.contexts
        parts = []
        for name in ("data", "target", "mask"):
            full = mx.nd.array(getattr(arrays, name), dtype="float32")
            parts.append(mx.gluon.utils.split_and_load(full, ctxs, batch_axis=1, even_split=False))
        lengths = mx.gluon.utils.split_and_load(mx.nd.array(arrays.lengths), ctxs, even_split=False)
        return list(zip(*parts, lengths))

    def train_batch(self, arrays):
        import mxnet as mx

        from common.optim import clip_and_step

        batch = arrays.data.shape[1]
        nll_sums, losses = [], []
        with mx.autograd.record():
            for data, target, mask, lengths in self._split(arrays):
                nll = self.net(data, target, mask)
                if self.args.loss_norm == "sentence":
                    loss = (nll.sum(axis=0) / lengths).sum() / batch
                else:
                    loss = nll.sum() / arrays.real_tokens
                losses.append(loss)
                nll_sums.append(nll.sum())
        mx.autograd.backward(losses)
        norm = clip_and_step(self.trainer, self.params, self.args.clip, self.scale)
        return _total(nll_sums), norm

    def eval_batch(self, arrays):
        sums = [self.net(d, t, m).sum() for d, t, m, _ in self._split(arrays)]
        return _total(sums)

    def set_learning_rate(self, lr: float) -> None:
        self.trainer.set_learning_rate(lr)

    def save(self, directory: Path, epoch: int, meta: dict) -> Path:
        from common import checkpoint

        states = not (self.runtime.distributed and not self.runtime.synchronous)
        return checkpoint.save(directory, epoch, self.net, self.trainer, meta, states)

    def load(self, stem: Path) -> dict:
        from common import checkpoint

        return checkpoint.load(stem, self.net, self.trainer, self.runtime.contexts)

    def average(self, stems: list[Path]) -> None:
        from common import checkpoint

        checkpoint.average_into(self.net, stems, self.runtime.contexts)

    def save_final(self, path: Path) -> None:
        self.net.save_parameters(str(path))


def _total(arrays):
    import mxnet as mx

    return mx.nd.add_n(*[a.as_in_context(mx.cpu()) for a in arrays])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_runtime_flags(p)
    add_lm_flags(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = configure_threads(args.threads)
    runtime = create_runtime(args.kvstore, parse_gpus(args.gpus))
    seed_everything(args.seed)
    data = prepare_data(args)
    out = rank_dir(args.output, runtime.rank)
    metrics = MetricsWriter(out, "lstm_bucketing", runtime.rank, runtime.num_workers, runtime.kvstore_type,
                            {**vars(args), "omp_threads": threads})
    model = DataParallelLM(args, runtime, len(data.vocab))
    train_plan = data.train.plan(args.batch_size, seed=0)
    if args.resume:
        metrics.keep_history(before_epoch=10**9)  # trimmed to the checkpoint's epoch by the loop
    metrics.data = {**data.describe(), "model": asdict(model.cfg),
                    "bucketed": data.train.padding_stats(train_plan),
                    "padded_to_max": data.train.padding_stats(train_plan, data.train.buckets[-1])}
    metrics.data["pad_limit"] = (metrics.data["padded_to_max"]["positions"]
                                 / max(metrics.data["bucketed"]["real_tokens"], 1))
    metrics.write()
    if runtime.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocab.txt").write_text("\n".join(data.vocab.tokens) + "\n")
    from common import lmloop

    lmloop.run(model, data, args, runtime, metrics, out / "checkpoints")
    model.save_final(out / "final.params")
    return 0


if __name__ == "__main__":
    sys.exit(main())
