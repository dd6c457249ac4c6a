"""The jobs' data plumbing without MXNet: corpus, vocabulary, buckets, batch plans, sharding, YAMLs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import jobprocs  # noqa: F401  (puts jobs/ on sys.path)
from common.buckets import BucketedData, choose_buckets
from common.sharding import shard_all, shard_evenly
from common.text import PAD_ID, Vocab, load_corpus, tokenize_prose


def test_prose_is_split_into_sentences_and_tokens() -> None:
    sents = tokenize_prose("The fire, near Sydney, grew. \"It's bad,\" he said! A 4.5 km front?")
    assert sents[0] == ["the", "fire", ",", "near", "sydney", ",", "grew"]
    assert sents[1][:3] == ['"', "it's", "bad"]
    assert sents[2] == ["a", "4.5", "km", "front"]


def test_offline_corpus_loads_without_gensim_import() -> None:
    import sys

    corpus = load_corpus(None)
    assert len(corpus.splits["train"]) > 2000 and len(corpus.splits["valid"]) > 100
    assert "gensim" not in sys.modules


def test_vocab_caps_size_and_maps_rare_words_to_unk() -> None:
    vocab = Vocab.build([["a", "b", "a"], ["c", "a", "b"]], max_size=6)
    assert vocab.tokens[4:] == ["a", "b"]
    assert vocab.encode(["a", "c"]) == [2, 4, 1, 3]


def test_buckets_follow_the_length_distribution() -> None:
    lengths = [5] * 40 + [6] * 10 + [7] * 30 + [30] * 3
    assert choose_buckets(lengths, min_count=32) == [5, 30]
    assert choose_buckets(lengths, min_count=10) == [5, 6, 30]  # the thin tail joins the last
    assert choose_buckets(lengths, min_count=10, max_len=20) == [5, 6, 7]


def _data() -> BucketedData:
    rng = np.random.RandomState(0)
    seqs = [[2] + list(rng.randint(4, 50, size=n)) + [3] for n in rng.randint(1, 20, size=200)]
    return BucketedData.build(seqs, [5, 10, 15])


def test_long_sentences_are_dropped_and_counted() -> None:
    data = _data()
    assert data.dropped_too_long > 0
    assert all(len(s) - 1 <= 15 for s in data.sequences)


def test_plan_is_deterministic_and_covers_every_sentence_once() -> None:
    data = _data()
    a, b = data.plan(8, seed=7), data.plan(8, seed=7)
    assert a == b and a != data.plan(8, seed=8)
    seen = sorted(i for batch in a for i in batch.indices)
    assert seen == list(range(len(data.sequences)))
    assert all(len(data.sequences[i]) - 1 <= batch.bucket_len for batch in a for i in batch.indices)


def test_arrays_mask_padding_and_shift_targets() -> None:
    data = _data()
    batch = data.plan(8, seed=1)[0]
    arr = data.arrays(batch)
    padded = data.arrays(batch, pad_to=15)
    assert arr.data.shape == (batch.bucket_len, len(batch.indices)) and padded.data.shape[0] == 15
    assert arr.mask.sum() == padded.mask.sum() == arr.lengths.sum()
    col = data.sequences[batch.indices[0]]
    n = len(col) - 1
    assert list(arr.data[:n, 0]) == col[:-1] and list(arr.target[:n, 0]) == col[1:]
    assert (padded.data[n:, 0] == PAD_ID).all() and (padded.mask[n:, 0] == 0).all()


@pytest.mark.parametrize("items,workers", [(10, 3), (9, 3), (2, 3), (101, 2)])
def test_even_shards_give_every_worker_the_same_count(items: int, workers: int) -> None:
    shards = [shard_evenly(list(range(items)), r, workers) for r in range(workers)]
    assert len({len(s) for s in shards}) == 1
    assert len(set().union(*shards)) == sum(len(s) for s in shards)
    assert sorted(i for r in range(workers) for i in shard_all(list(range(items)), r, workers)) == list(range(items))


@pytest.mark.parametrize("name", ["lstm_bucketing", "resnet", "lstm_model_parallel"])
def test_job_yaml_is_a_valid_job_spec(name: str) -> None:
    yaml_path = jobprocs.JOBS / f"{name}.yaml"
    if not yaml_path.exists():
        pytest.fail(f"{yaml_path} missing")
    from dlcfn.spec.job import load_job

    spec = load_job(yaml_path)
    assert (Path(spec.workdir) / spec.script).is_file()
    assert (Path(spec.workdir) / "common" / "runtime.py").is_file()  # the shared code ships too
    assert spec.env.get("OMP_NUM_THREADS") == "1"


def test_plateau_decays_the_rate_then_stops() -> None:
    from common.optim import Plateau

    p = Plateau(lr=1.0, decay=0.5, patience=2)
    assert p.observe(100.0) == (True, False) and p.lr == 1.0
    assert p.observe(90.0) == (True, False)
    assert p.observe(95.0) == (False, False) and p.lr == 0.5
    assert p.observe(91.0) == (False, True) and p.lr == 0.25 and p.best == 90.0


def test_lr_schedules_warm_up_then_decay() -> None:
    from common.optim import scheduled_lr

    assert scheduled_lr(0.1, 0.5, 10, "cosine", warmup_epochs=1) == pytest.approx(0.05, rel=1e-6)
    assert scheduled_lr(0.1, 1.0, 10, "cosine", warmup_epochs=1) == pytest.approx(0.1)
    assert scheduled_lr(0.1, 10.0, 10, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert scheduled_lr(0.1, 5.0, 10, "step", steps=(3, 6)) == pytest.approx(0.01)
