"""The ResNet job on a tiny Fashion-MNIST subset, as a real process."""

from __future__ import annotations

from pathlib import Path

from jobprocs import read_metrics


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
