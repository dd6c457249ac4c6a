"""The ResNet job on a tiny Fashion-MNIST subset, as real processes (alone and as dist_sync
workers), and the BatchNorm statistics sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jobprocs import read_metrics, run_kvstore_cluster


def test_resnet_loss_falls_on_fashion_mnist(tmp_path: Path, run_script) -> None:
    out = tmp_path / "out"
    run_script("resnet/train.py", "--model", "resnet8", "--width", "8", "--max-train", "1536",
               "--max-valid", "512", "--epochs", "2", "--lr", "0.05", "--output", str(out))
    m = read_metrics(out)
    assert m["data"]["source"].startswith("fashion-mnist") and m["data"]["image_shape"] == [1, 28, 28]
    e = m["epochs"]
    assert [x["epoch"] for x in e] == [0, 1, 2]
    assert e[2]["train_loss"] < e[1]["train_loss"]
    assert e[2]["valid_loss"] < e[0]["valid_loss"]
    assert e[2]["valid_acc"] > 0.3 > e[0]["valid_acc"]  # 10 classes: 0.1 is chance
    assert e[1]["images_per_s"] > 0 and e[1]["batches"] == 1536 // 64
    assert (out / "rank-0" / "final.params").stat().st_size > 0


def test_resnet_synthetic_throughput_run(tmp_path: Path, run_script) -> None:
    out = tmp_path / "out"
    run_script("resnet/train.py", "--synthetic", "128", "--image-shape", "3,16,16", "--model", "resnet8",
               "--width", "4", "--epochs", "1", "--batch-size", "32", "--output", str(out))
    m = read_metrics(out)
    assert m["data"]["source"].startswith("synthetic") and m["epochs"][1]["batches"] == 4


def test_dist_sync_workers_keep_their_own_bn_stats_with_no_sync(tmp_path: Path, processes) -> None:
    """The counterpart of the RecordIO dist_sync test (synced: every entry identical): with
    --no-sync-bn-stats the weights still agree but the running statistics do not."""
    out = tmp_path / "out"
    args = ["--model", "resnet8", "--width", "4", "--max-train", "960", "--max-valid", "192", "--epochs", "1",
            "--batch-size", "48", "--kvstore", "dist_sync", "--no-sync-bn-stats", "--output", str(out)]
    run_kvstore_cluster(processes, tmp_path, "resnet/train.py", args, num_workers=2)
    import mxnet as mx

    finals = [mx.nd.load(str(out / f"rank-{r}" / "final.params")) for r in (0, 1)]
    running = [k for k in finals[0] if "running_" in k]
    weights = [k for k in finals[0] if k not in running]
    assert running and weights
    for name in weights:
        np.testing.assert_array_equal(finals[0][name].asnumpy(), finals[1][name].asnumpy(), err_msg=name)
    assert all(not np.allclose(finals[0][k].asnumpy(), finals[1][k].asnumpy()) for k in running)


def test_aux_states_are_averaged_across_local_contexts() -> None:
    import mxnet as mx

    from common.auxstates import average_aux_states
    from common.runtime import Runtime

    contexts = [mx.cpu(0), mx.cpu(1)]
    net = mx.gluon.nn.BatchNorm(in_channels=3)
    net.initialize(ctx=contexts)
    for shift, ctx in enumerate(contexts):  # each replica sees its own batch
        with mx.autograd.record():
            out = net(mx.nd.random.normal(shift * 5, 1 + shift, shape=(8, 3, 4, 4), ctx=ctx))
        out.backward()
    params = net.collect_params()
    before = {k: [a.asnumpy() for a in p.list_data()] for k, p in params.items() if p.grad_req == "null"}
    assert all(not np.allclose(*arrays) for arrays in before.values())
    runtime = Runtime("local", None, 0, 1, contexts)
    assert average_aux_states(params, runtime, key_base=100_000) == 2
    for name, arrays in before.items():
        after = [a.asnumpy() for a in params[name].list_data()]
        np.testing.assert_array_equal(after[0], after[1])
        np.testing.assert_allclose(after[0], (arrays[0] + arrays[1]) / 2, rtol=1e-6)
    assert params[[k for k in params if k.endswith("gamma")][0]].grad_req == "write"  # weights untouched
