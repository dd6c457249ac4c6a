"""ResNet image classification, data parallel over contexts and kvstore workers.

Data: Fashion-MNIST (offline default), CIFAR-10 binary (``--data cifar10 --data-dir``),
RecordIO (``--data recordio --train-rec --val-rec``, e.g. from MXNet's tools/im2rec.py),
or synthetic images (``--synthetic``, for throughput). Hybridized Gluon; SGD with momentum,
weight decay, step or cosine schedule with linear warm-up. BatchNorm running statistics are
averaged over contexts and dist_sync workers after every epoch (``--sync-bn-stats``), so
validation and ``final.params`` are the same on every rank. Writes
``<output>/rank-<r>/metrics.json`` (loss, accuracy, img/s per epoch) and ``final.params``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # jobs/: the shared `common` package

from common.auxstates import average_aux_states  # noqa: E402
from common.metrics import MetricsWriter, rank_dir  # noqa: E402
from common.runtime import add_runtime_flags, allreduce_sums, configure_threads, create_runtime, parse_gpus, seed_everything  # noqa: E402
from common.sharding import shard_all, shard_evenly  # noqa: E402

_EPOCH_KEY, _VALID_KEY = 1_000_001, 1_000_002
# + i for the i-th BatchNorm running statistic: far above the trainer's parameter indices, and
# below 2**31 / 9973, where MXNet's dist kvstore (server = key * 9973 % servers, in int)
# overflows (a base of 2,000,000 hung with 2 servers).
_AUX_KEY_BASE = 100_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_runtime_flags(p)
    d = p.add_argument_group("data")
    d.add_argument("--data", choices=("fashion-mnist", "cifar10", "recordio"), default="fashion-mnist")
    d.add_argument("--data-dir", default=None, help="idx files (fashion-mnist) or CIFAR-10 .bin batches")
    d.add_argument("--train-rec", default=None, help="--data recordio: training .rec (its .idx beside it)")
    d.add_argument("--val-rec", default=None, help="--data recordio: validation .rec (its .idx beside it)")
    d.add_argument("--image-shape", default="3,32,32",
                   help="C,H,W for --synthetic and --data recordio (larger records are cropped)")
    d.add_argument("--num-classes", type=int, default=10, help="for --synthetic and --data recordio")
    d.add_argument("--rand-crop", action="store_true", help="--data recordio: random crops for training")
    d.add_argument("--rand-mirror", action="store_true", help="--data recordio: random mirroring for training")
    d.add_argument("--pad", type=int, default=0, help="--data recordio: pad by N pixels before a --rand-crop")
    d.add_argument("--synthetic", type=int, default=0, metavar="N", help="N random images instead of data")
    d.add_argument("--max-train", type=int, default=0, help="use the first N training images (0: all)")
    d.add_argument("--max-valid", type=int, default=0, help="use the first N validation images (0: all)")
    d.add_argument("--log-records", action="store_true",
                   help="write OUTPUT/rank-<r>/records.json: the training records this worker read, per epoch")
    m = p.add_argument_group("model and optimisation")
    m.add_argument("--model", default="resnet20", help="resnet<6n+2> (CIFAR style: 20, 56, 110) or resnet18/resnet50")
    m.add_argument("--width", type=int, default=16, help="first stage channels of the CIFAR-style nets")
    m.add_argument("--epochs", type=int, default=2)
    m.add_argument("--batch-size", type=int, default=64, help="images per batch per worker")
    m.add_argument("--lr", type=float, default=0.1)
    m.add_argument("--momentum", type=float, default=0.9)
    m.add_argument("--wd", type=float, default=1e-4)
    m.add_argument("--lr-schedule", choices=("cosine", "step", "constant"), default="cosine")
    m.add_argument("--lr-steps", default="", help="epochs at which --lr-schedule step multiplies by --lr-factor")
    m.add_argument("--lr-factor", type=float, default=0.1)
    m.add_argument("--warmup-epochs", type=float, default=0.0)
    m.add_argument("--sync-bn-stats", action=argparse.BooleanOptionalAction, default=True,
                   help="average BatchNorm running mean/var over contexts and dist_sync workers after "
                        "every epoch (default on; off: each worker keeps its own)")
    return p.parse_args(argv)


def load_data(args: argparse.Namespace):
    from common import images

    if args.synthetic:
        return images.synthetic(image_shape(args.image_shape), args.num_classes, args.synthetic, args.seed)
    if args.data != "recordio" and (args.train_rec or args.val_rec):
        raise SystemExit(f"--train-rec/--val-rec need --data recordio (got --data {args.data})")
    if args.data == "recordio":
        return load_recordio(args)
    if args.data == "cifar10":
        if not args.data_dir:
            raise SystemExit("--data cifar10 needs --data-dir with the CIFAR-10 binary batches")
        data = images.load_cifar10(Path(args.data_dir))
    else:
        data = images.load_fashion_mnist(Path(args.data_dir) if args.data_dir else images.FASHION_MNIST_DIR)
    data.train, data.valid = images.subset(data.train, args.max_train), images.subset(data.valid, args.max_valid)
    return data


def image_shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"--image-shape: expected C,H,W such as 3,32,32 (got {text!r})")
    return c, h, w


def load_recordio(args: argparse.Namespace):
    from common.recordio import check_rec, load_recordio as load

    train, valid = check_rec("--train-rec", args.train_rec), check_rec("--val-rec", args.val_rec)
    return load(train, valid, image_shape(args.image_shape), args.num_classes, args.seed,
                (args.max_train, args.max_valid), rand_crop=args.rand_crop, rand_mirror=args.rand_mirror,
                pad=args.pad)


class ImageTrainer:
    def __init__(self, args: argparse.Namespace, runtime, classes: int, in_channels: int):
        import mxnet as mx

        from common.optim import make_trainer, step_scale, sync_initial_parameters
        from resnet.model import build

        self.args, self.runtime, self.mx = args, runtime, mx
        self.net = build(args.model, classes, args.width, in_channels)
        # ImageNet-style nets leave their input channels to be inferred: infer every shape
        # symbolically, not by a forward pass. After a forward pass (with oneDNN on), rank 0's
        # initial values under dist_sync were not on the server when the others pulled them
        # ("init N first": the server aborts), so nothing runs forward before the broadcast.
        self.net.infer_shape(mx.nd.zeros((1, in_channels, 32, 32)))
        self.net.initialize(mx.init.Xavier(magnitude=2), ctx=runtime.contexts)
        self.net.hybridize(static_alloc=True, static_shape=True)
        self.params = self.net.collect_params()
        self.trainer = make_trainer(self.params, "sgd", args.lr, runtime, args.momentum, args.wd)
        self.scale = step_scale(runtime)
        self.loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
        sync_initial_parameters(self.trainer)

    def _split(self, x, y):
        gu = self.mx.gluon.utils
        return (gu.split_and_load(self.mx.nd.array(x), self.runtime.contexts, even_split=False),
                gu.split_and_load(self.mx.nd.array(y), self.runtime.contexts, even_split=False))

    def train_batch(self, x, y):
        from common.optim import clip_and_step

        mx = self.mx
        xs, ys = self._split(x, y)
        with mx.autograd.record():
            outs = [self.net(a) for a in xs]
            losses = [self.loss(o, b).sum() / len(y) for o, b in zip(outs, ys)]
        mx.autograd.backward(losses)
        clip_and_step(self.trainer, self.params, 0.0, self.scale)
        return _stats(mx, outs, ys, losses, len(y))

    def eval_batch(self, x, y):
        xs, ys = self._split(x, y)
        outs = [self.net(a) for a in xs]
        losses = [self.loss(o, b).sum() / len(y) for o, b in zip(outs, ys)]
        return _stats(self.mx, outs, ys, losses, len(y))


def _stats(mx, outs, ys, losses, n):
    """(summed loss, correct) of a batch as one NDArray of shape (2,) on the CPU: not read
    back here (reading waits for the batch), so Python runs ahead to the next batch."""
    loss = mx.nd.add_n(*[l.as_in_context(mx.cpu()) for l in losses]) * n
    correct = mx.nd.add_n(*[(o.argmax(axis=1) == b).sum().as_in_context(mx.cpu()) for o, b in zip(outs, ys)])
    return mx.nd.concat(loss.reshape((1,)), correct.reshape((1,)), dim=0)


def _read(stats: list) -> tuple[float, float]:
    if not stats:
        return 0.0, 0.0
    total = sum(s.asnumpy().astype('float64') for s in stats)
    return float(total[0]), float(total[1])


def batches(n: int, batch_size: int, seed: int | None) -> list:
    import numpy as np

    order = np.arange(n) if seed is None else np.random.RandomState(seed).permutation(n)
    full = n - n % batch_size if seed is not None else n  # training: equal shapes, equal counts
    return [order[i:i + batch_size] for i in range(0, full, batch_size)]


def epoch_plan(data, args, runtime, epoch: int) -> list:
    """This worker's training batches (record indices): the same number on every worker."""
    return shard_evenly(batches(len(data.train), args.batch_size, args.seed * 1000 + epoch),
                        runtime.rank, runtime.num_workers)


def run_epoch(model: ImageTrainer, data, plan: list, runtime, epoch: int, lr_at) -> dict:
    stats, seen = [], 0
    start = time.perf_counter()
    for i, idx in enumerate(plan):
        model.trainer.set_learning_rate(lr_at(epoch - 1 + i / max(len(plan), 1)))
        stats.append(model.train_batch(*data.train.batch(idx, augment=True)))
        seen += len(idx)
        if len(stats) > 1:
            stats[-2].wait_to_read()  # one batch ahead of the engine, no further
    loss, correct = _read(stats)
    seconds = time.perf_counter() - start
    mine = seen
    loss, correct, seen, secs = allreduce_sums(runtime, [loss, correct, seen, seconds], _EPOCH_KEY)
    return {"train_loss": loss / max(seen, 1), "train_acc": correct / max(seen, 1),
            "images_per_s": mine / seconds,
            # every worker's rate added up (seconds summed: mean epoch time across workers)
            "cluster_images_per_s": seen / (secs / runtime.num_workers), "batches": len(plan),
            "lr": model.trainer.learning_rate, "time_s": seconds}


def evaluate(model: ImageTrainer, data, args, runtime) -> dict:
    plan = batches(len(data.valid), args.batch_size, None)
    if runtime.shares_evaluation:
        plan = shard_all(plan, runtime.rank, runtime.num_workers)
    loss, correct = _read([model.eval_batch(*data.valid.batch(idx)) for idx in plan])
    loss, correct = allreduce_sums(runtime, [loss, correct], _VALID_KEY)
    n = len(data.valid)
    return {"valid_loss": loss / n, "valid_acc": correct / n}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = configure_threads(args.threads)
    runtime = create_runtime(args.kvstore, parse_gpus(args.gpus))
    seed_everything(args.seed)
    data = load_data(args)
    from common.optim import scheduled_lr

    steps = tuple(int(s) for s in args.lr_steps.split(",") if s)
    lr_at = lambda progress: scheduled_lr(args.lr, progress, args.epochs, args.lr_schedule,  # noqa: E731
                                          args.warmup_epochs, steps, args.lr_factor)
    out = rank_dir(args.output, runtime.rank)
    metrics = MetricsWriter(out, "resnet", runtime.rank, runtime.num_workers, runtime.kvstore_type,
                            {**vars(args), "omp_threads": threads})
    metrics.data = {"source": data.source, "train_images": len(data.train),
                    "valid_images": len(data.valid), "image_shape": list(data.train.shape),
                    "classes": data.train.classes}
    model = ImageTrainer(args, runtime, data.train.classes, data.train.shape[0])
    metrics.log_epoch({"epoch": 0, **evaluate(model, data, args, runtime)})
    seen_records: dict[str, list[int]] = {}
    for epoch in range(1, args.epochs + 1):
        plan = epoch_plan(data, args, runtime, epoch)
        record = run_epoch(model, data, plan, runtime, epoch, lr_at)
        if args.sync_bn_stats:  # before validation and saving: every rank holds the same model
            average_aux_states(model.params, runtime, _AUX_KEY_BASE)
        metrics.log_epoch({"epoch": epoch, **record, **evaluate(model, data, args, runtime)})
        if args.log_records:
            seen_records[str(epoch)] = sorted(int(i) for idx in plan for i in idx)
            (out / "records.json").write_text(json.dumps(seen_records) + "\n")
    metrics.final = {k: metrics.epochs[-1][k] for k in ("valid_loss", "valid_acc")}
    metrics.write()
    model.net.save_parameters(str(out / "final.params"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
