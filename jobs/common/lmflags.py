"""Command-line flags shared by the language-model jobs, and what they build:
the corpus, vocabulary and buckets (``prepare_data``) and the model config (``model_config``)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from common.buckets import BucketedData, choose_buckets
from common.text import Corpus, Vocab, load_corpus


def add_lm_flags(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", default=None, help="directory with ptb.train.txt/ptb.valid.txt; "
                   "default: the Lee news corpus from gensim's test data")
    d.add_argument("--vocab-size", type=int, default=10000, help="keep the most frequent words")
    d.add_argument("--max-sentences", type=int, default=0, help="use the first N training sentences (0: all)")
    d.add_argument("--max-len", type=int, default=80, help="drop (and count) longer sentences")
    d.add_argument("--buckets", default=None, help="bucket lengths, e.g. 10,20,40; default: from the data")
    d.add_argument("--bucket-min-count", type=int, default=0,
                   help="sentences per automatic bucket (default: the batch size)")
    d.add_argument("--pad-to-max", action="store_true",
                   help="no bucketing: pad every batch to the largest bucket (same batches)")
    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    m.add_argument("--unrolled", action="store_true", help="unrolled cells instead of the fused RNN op")
    m.add_argument("--embed", type=int, default=200)
    m.add_argument("--hidden", type=int, default=200)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--dropout", type=float, default=0.2, help="on non-recurrent connections")
    m.add_argument("--variational-dropout", action="store_true",
                   help="same dropout mask at every time step, also on the state (implies --unrolled)")
    m.add_argument("--learned-init", action="store_true", help="learn the initial hidden/cell state")
    m.add_argument("--no-gate-bias", action="store_true",
                   help="do not set forget-gate bias 1 (GRU: reset-gate bias -1)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", choices=("adam", "sgd", "nag"), default="adam")
    o.add_argument("--lr", type=float, default=0.003)
    o.add_argument("--momentum", type=float, default=0.9, help="sgd/nag only")
    o.add_argument("--wd", type=float, default=0.0)
    o.add_argument("--clip", type=float, default=1.0, help="max global gradient norm (0: off)")
    o.add_argument("--loss-norm", choices=("sentence", "token"), default="sentence",
                   help="sentence: sum over a sentence / its length, mean over the batch; "
                        "token: sum over the batch / its real tokens")
    o.add_argument("--epochs", type=int, default=2)
    o.add_argument("--batch-size", type=int, default=32, help="sentences per batch per worker")
    o.add_argument("--lr-decay", type=float, default=0.5, help="LR factor when validation does not improve")
    o.add_argument("--patience", type=int, default=2, help="stop after N epochs without improvement (0: never)")
    o.add_argument("--checkpoint-avg", type=int, default=1,
                   help="evaluate the average of the last K checkpoints at the end (1: off)")
    o.add_argument("--resume", default=None, help="checkpoints directory or checkpoint to resume from")


@dataclass
class LMData:
    vocab: Vocab
    train: BucketedData
    valid: BucketedData
    source: str

    def describe(self) -> dict:
        return {"source": self.source, "vocab_size": len(self.vocab),
                "train_sentences": len(self.train.sequences), "valid_sentences": len(self.valid.sequences),
                "dropped_too_long": {"train": self.train.dropped_too_long, "valid": self.valid.dropped_too_long},
                "buckets": self.train.buckets}


def prepare_data(args: argparse.Namespace) -> LMData:
    corpus: Corpus = load_corpus(args.data_dir)
    train_sents = corpus.splits["train"]
    if args.max_sentences:
        train_sents = train_sents[: args.max_sentences]
    vocab = Vocab.build(train_sents, args.vocab_size)
    train_ids = [vocab.encode(s) for s in train_sents]
    valid_ids = [vocab.encode(s) for s in corpus.splits["valid"]]
    if args.buckets:
        buckets = sorted(int(b) for b in args.buckets.split(","))
    else:
        buckets = choose_buckets([len(s) - 1 for s in train_ids],
                                 args.bucket_min_count or args.batch_size, args.max_len)
    valid_buckets = buckets if args.buckets else _cover(buckets, args.max_len)
    return LMData(vocab, BucketedData.build(train_ids, buckets),
                  BucketedData.build(valid_ids, valid_buckets), corpus.source)


def _cover(buckets: list[int], max_len: int) -> list[int]:
    """Validation keeps every sentence up to ``max_len``, even beyond the training buckets."""
    return buckets if buckets[-1] >= max_len else buckets + [max_len]


def model_config(args: argparse.Namespace, vocab_size: int):
    from common.lm import LMConfig

    return LMConfig(vocab_size=vocab_size, embed=args.embed, hidden=args.hidden, layers=args.layers,
                    cell=args.cell, fused=not args.unrolled, dropout=args.dropout,
                    variational=args.variational_dropout, learned_init=args.learned_init,
                    gate_bias=not args.no_gate_bias)
