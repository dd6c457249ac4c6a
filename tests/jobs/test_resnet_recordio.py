"""The ResNet job on RecordIO input: .rec files written here from Fashion-MNIST images, read by
real job processes (one alone, two as dist_sync workers), and the one-line input errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jobprocs import JOBS, PYTHON, job_env, read_metrics, run_kvstore_cluster
from common import images
from common.recordio import RecordImageSet, write_rec

SMALL = ["--data", "recordio", "--image-shape", "1,28,28", "--model", "resnet8"]


def _fashion(prefix: str, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    pixels = images._read_idx(images._find(images.FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte"))
    labels = images._read_idx(images._find(images.FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte"))
    return pixels[first:first + count], labels[first:first + count]


@pytest.fixture(scope="module")
def recs(tmp_path_factory) -> dict[str, Path]:
    """train.rec (1536 images) and val.rec (512), each with its .idx."""
    d = tmp_path_factory.mktemp("rec")
    return {"train": write_rec(d / "train.rec", *_fashion("train", 0, 1536)),
            "val": write_rec(d / "val.rec", *_fashion("t10k", 0, 512))}


def _rec_args(recs: dict[str, Path], out: Path) -> list[str]:
    return ["--train-rec", str(recs["train"]), "--val-rec", str(recs["val"]), "--output", str(out)]


def test_written_rec_reads_back_exactly(tmp_path: Path) -> None:
    rng = np.random.RandomState(0)
    grey, rgb = rng.randint(0, 256, (5, 9, 7)).astype(np.uint8), rng.randint(0, 256, (4, 6, 8, 3)).astype(np.uint8)
    for name, pixels, shape in (("grey", grey, (1, 9, 7)), ("rgb", rgb, (3, 6, 8))):
        rec = write_rec(tmp_path / f"{name}.rec", pixels, np.arange(len(pixels)) % 3)
        assert rec.with_suffix(".idx").is_file()
        got = RecordImageSet(rec, shape, classes=3)
        x, y = got.batch([3, 0])  # mean 0, std 1: pixels / 255
        expected = pixels[[3, 0]].reshape(2, *shape[1:], shape[0]).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(np.rint(x * 255), expected)
        assert list(y) == [0.0, 0.0] and len(got) == len(pixels)


def test_random_crop_pads_and_mirrors_only_when_augmenting(tmp_path: Path) -> None:
    pixels = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    rec = write_rec(tmp_path / "crop.rec", pixels, np.zeros(2))
    s = RecordImageSet(rec, (1, 6, 6), classes=1, rand_crop=True, rand_mirror=True, pad=2)
    centre, _ = s.batch([1])
    np.testing.assert_array_equal(np.rint(centre[0, 0] * 255), pixels[1, 1:7, 1:7])
    crops = {s.batch([1], augment=True)[0].tobytes() for _ in range(20)}
    assert len(crops) > 5  # offsets (0..6 each way) and mirroring vary


def test_resnet_trains_from_recordio(tmp_path: Path, run_script, recs) -> None:
    out = tmp_path / "out"
    run_script("resnet/train.py", *SMALL, "--width", "8", "--epochs", "2", "--lr", "0.05",
               "--rand-crop", "--pad", "2", "--rand-mirror", *_rec_args(recs, out))
    m = read_metrics(out)
    assert m["data"]["source"].startswith("recordio") and m["data"]["image_shape"] == [1, 28, 28]
    assert (m["data"]["train_images"], m["data"]["valid_images"]) == (1536, 512)
    e = m["epochs"]
    assert all(np.isfinite(x["valid_loss"]) for x in e)
    assert e[2]["train_loss"] < e[1]["train_loss"] and e[2]["valid_loss"] < e[0]["valid_loss"]
    assert e[2]["valid_acc"] > 0.3 > e[0]["valid_acc"]  # 10 classes: 0.1 is chance
    assert e[1]["batches"] == 1536 // 64 and e[1]["images_per_s"] > 0


def test_two_dist_sync_workers_read_disjoint_shards_and_end_identical(tmp_path: Path, processes, recs) -> None:
    out = tmp_path / "out"
    # 1000 records, batch 48: 20 full batches an epoch, 10 per worker; 40 records left out
    args = [*SMALL, "--width", "4", "--epochs", "2", "--batch-size", "48", "--max-train", "1000",
            "--max-valid", "200", "--kvstore", "dist_sync", "--log-records", *_rec_args(recs, out)]
    # two servers: the kvstore keys of the statistics' sums must map to a valid server
    run_kvstore_cluster(processes, tmp_path, "resnet/train.py", args, num_workers=2, num_servers=2)
    m = [read_metrics(out, r) for r in (0, 1)]
    seen = [json.loads((out / f"rank-{r}" / "records.json").read_text()) for r in (0, 1)]
    for epoch in ("1", "2"):
        assert m[0]["epochs"][int(epoch)]["batches"] == m[1]["epochs"][int(epoch)]["batches"] == 10
        mine, theirs = set(seen[0][epoch]), set(seen[1][epoch])
        assert len(mine) == len(theirs) == 480 and not mine & theirs
        assert max(mine | theirs) < 1000
    assert seen[0]["1"] != seen[0]["2"]  # reshuffled each epoch
    assert [e["valid_loss"] for e in m[0]["epochs"]] == [e["valid_loss"] for e in m[1]["epochs"]]
    import mxnet as mx

    finals = [mx.nd.load(str(out / f"rank-{r}" / "final.params")) for r in (0, 1)]
    running = [k for k in finals[0] if "running_" in k]
    assert len(running) >= 10 and finals[0].keys() == finals[1].keys()
    for name in finals[0]:  # BatchNorm running statistics included: averaged over the workers
        np.testing.assert_array_equal(finals[0][name].asnumpy(), finals[1][name].asnumpy(), err_msg=name)


def _fails(*args: str) -> str:
    proc = subprocess.run([PYTHON, str(JOBS / "resnet/train.py"), *args, "--epochs", "1"], env=job_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_recordio_input_errors_are_one_line(tmp_path: Path, recs) -> None:
    val = ["--val-rec", str(recs["val"])]
    assert _fails("--data", "recordio", *val).startswith("--data recordio needs --train-rec")
    assert _fails("--data", "recordio", "--train-rec", str(tmp_path / "no.rec"), *val) == \
        f"--train-rec {tmp_path / 'no.rec'}: file not found"
    lonely = tmp_path / "lonely.rec"
    lonely.write_bytes(recs["train"].read_bytes())  # no .idx beside it
    assert "index" in _fails("--data", "recordio", "--train-rec", str(lonely), *val)
    assert _fails("--train-rec", str(recs["train"])).startswith("--train-rec/--val-rec need --data recordio")
