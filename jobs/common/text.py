"""Text corpora for the language models: loading, tokenising, vocabulary, encoding.

Two sources:
- PTB-format files (``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``: one tokenised
  sentence per line) from ``--data-dir``;
- offline default: the Lee news corpus shipped in gensim's test data (``lee_background.cor``
  for training, ``lee.cor`` for validation), one article per line, split into sentences here.
  The file is located without importing gensim (which takes seconds and pulls scipy).
"""
from __future__ import annotations

import importlib.util
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
PAD_ID = 0

# A sentence ends at . ! or ? followed by space and a capital letter or an opening quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_TOKEN = re.compile(r"[a-z0-9]+(?:['\-.][a-z0-9]+)*|[^\sa-z0-9]")


@dataclass
class Corpus:
    """Tokenised sentences per split, and where they came from."""

    source: str
    splits: dict[str, list[list[str]]] = field(default_factory=dict)


def gensim_test_data_dir() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("offline corpus needs the gensim package (pip install gensim), "
                         "or pass --data-dir with ptb.train.txt/ptb.valid.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"


def tokenize_prose(text: str) -> list[list[str]]:
    """Raw English prose -> lowercased token lists, one per sentence."""
    sentences = []
    for raw in _SENTENCE_END.split(text.strip()):
        tokens = _TOKEN.findall(raw.lower())
        if tokens and tokens[-1] in {".", "!", "?"}:
            tokens = tokens[:-1]  # the sentence boundary is </s>, like PTB
        if tokens:
            sentences.append(tokens)
    return sentences


def load_lee() -> Corpus:
    base = gensim_test_data_dir()
    splits = {}
    for split, name in (("train", "lee_background.cor"), ("valid", "lee.cor")):
        text = (base / name).read_text(encoding="utf-8", errors="replace")
        splits[split] = [s for line in text.splitlines() for s in tokenize_prose(line)]
    return Corpus(source=f"lee ({base})", splits=splits)


def load_ptb(data_dir: Path) -> Corpus:
    splits = {}
    for split in ("train", "valid", "test"):
        path = data_dir / f"ptb.{split}.txt"
        if not path.exists():
            if split == "test":
                continue
            raise SystemExit(f"--data-dir: {path} not found (expected ptb.train.txt and ptb.valid.txt)")
        lines = path.read_text(encoding="utf-8").splitlines()
        splits[split] = [line.split() for line in lines if line.strip()]
    return Corpus(source=f"ptb ({data_dir})", splits=splits)


def load_corpus(data_dir: str | None) -> Corpus:
    return load_ptb(Path(data_dir)) if data_dir else load_lee()


@dataclass
class Vocab:
    """Token <-> id; ids 0..3 are <pad>, <unk>, <s>, </s>."""

    tokens: list[str]

    def __post_init__(self) -> None:
        self.index = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def build(cls, sentences: list[list[str]], max_size: int | None) -> "Vocab":
        counts = Counter(tok for s in sentences for tok in s)
        for special in (PAD, UNK, BOS, EOS):
            counts.pop(special, None)
        # Most frequent first, ties alphabetical: the same vocabulary on every rank.
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        if max_size:
            ordered = ordered[: max(0, max_size - 4)]
        return cls([PAD, UNK, BOS, EOS] + ordered)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, sentence: list[str]) -> list[int]:
        """``<s> w1 .. wn </s>`` as ids; unknown words -> <unk>."""
        unk = self.index[UNK]
        return [self.index[BOS]] + [self.index.get(t, unk) for t in sentence] + [self.index[EOS]]
