"""Model-parallel LSTM language model: layers placed on different devices as a pipeline.

One process drives all devices (``--devices cpu:0,cpu:1`` here; ``gpu:0,gpu:1`` on a GPU
host, the default when two GPUs exist). Same corpus, buckets, flags, loop and
``<output>/rank-0/metrics.json`` as ``lstm_bucketing`` (see jobs/README.md), plus
``data.placement`` (which layers sit on which device). Runs with ``--kvstore local``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # jobs/: the shared `common` package

from common.lmflags import add_lm_flags, model_config, prepare_data  # noqa: E402
from common.metrics import MetricsWriter, rank_dir  # noqa: E402
from common.runtime import add_runtime_flags, configure_threads, create_runtime, resolve_kvstore, seed_everything  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_runtime_flags(p)
    add_lm_flags(p)
    p.add_argument("--devices", default="auto",
                   help="one device per pipeline stage, e.g. cpu:0,cpu:1 or gpu:0,gpu:1 "
                        "(auto: gpu:0,gpu:1 when two GPUs exist, else cpu:0,cpu:1)")
    p.add_argument("--micro-batches", type=int, default=2,
                   help="split each batch so the stages work on different micro-batches at once")
    p.set_defaults(layers=4, hidden=256, embed=256)
    return p.parse_args(argv)


def parse_devices(spec: str) -> list:
    import mxnet as mx

    if spec == "auto":
        spec = "gpu:0,gpu:1" if mx.context.num_gpus() >= 2 else "cpu:0,cpu:1"
    contexts = []
    for item in spec.split(","):
        kind, _, index = item.strip().partition(":")
        if kind not in ("cpu", "gpu") or not index.isdigit():
            raise SystemExit(f"--devices: expected items like cpu:0 or gpu:1 (got {item!r})")
        if kind == "gpu" and int(index) >= mx.context.num_gpus():
            raise SystemExit(f"--devices: {item} not present ({mx.context.num_gpus()} GPUs)")
        contexts.append(mx.Context(kind, int(index)))
    return contexts


def build_model(args: argparse.Namespace, vocab_size: int):
    from lstm_model_parallel.pipeline import PipelineLM, Placement, balance, layer_costs

    cfg = model_config(args, vocab_size)
    contexts = parse_devices(args.devices)
    placement = Placement(contexts, balance(layer_costs(cfg), len(contexts)))
    return PipelineLM(args, cfg, placement)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = configure_threads(args.threads)
    if resolve_kvstore(args.kvstore) not in ("local", "none"):
        raise SystemExit("--kvstore: the model-parallel job is one process driving several devices; "
                         "use kvstore local (num_workers: 1)")
    runtime = create_runtime("local", [])
    seed_everything(args.seed)
    data = prepare_data(args)
    out = rank_dir(args.output, 0)
    metrics = MetricsWriter(out, "lstm_model_parallel", 0, 1, "local", {**vars(args), "omp_threads": threads})
    model = build_model(args, len(data.vocab))
    if args.resume:
        metrics.keep_history(before_epoch=10**9)
    metrics.data = {**data.describe(), "model": asdict(model.cfg), "placement": model.placement.describe(),
                    "bucketed": data.train.padding_stats(data.train.plan(args.batch_size, seed=0))}
    metrics.write()
    (out / "vocab.txt").write_text("\n".join(data.vocab.tokens) + "\n")
    from common import lmloop

    lmloop.run(model, data, args, runtime, metrics, out / "checkpoints")
    model.save_final(out / "final.params")
    return 0


if __name__ == "__main__":
    sys.exit(main())
