"""Words in, ids out: the tokeniser and vocabulary every data set shares.

A caption ``y`` is a sequence of word ids ``y_1 .. y_N``. A batch of captions of
different lengths is padded with id 0 (``<pad>``) to a rectangle ``(M, L)`` (M captions, L words) and
carries its true lengths, so that later modules (the BiLSTM of chapter 2, the
alignment of chapter 5) can ignore padding exactly.

Two kinds of vocabulary:

* **closed** (MNIST with captions, captioned shapes): every word the model can
  ever see is known in advance; an unknown word is a user error and raises
  :class:`UnknownWordError` listing the unknown words and the whole vocabulary;
* **open** (MS-COCO): words seen fewer than ``min_count`` times in training map
  to ``<unk>``.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words and punctuation marks.

    >>> tokenize("A man's hat, on a  BUS.")
    ['a', "man's", 'hat', ',', 'on', 'a', 'bus', '.']
    """
    return _TOKEN.findall(text.lower())


def pad(rows: Sequence[Sequence[int]], n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists with 0 (``<pad>``): ``ids (M, L)`` and ``lengths (M,)``, int64."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (M,)
    ids = torch.zeros(len(rows), int(lengths.max()) if n is None else n, dtype=torch.long)  # (M, L)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return ids, lengths


class UnknownWordError(ValueError):
    """A caption used words outside a closed vocabulary."""


class EmptyCaptionError(ValueError):
    """A caption had no words at all."""


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of words; a word's id is its position. Id 0 is padding.

    ``unk`` is True for an open vocabulary (unknown words -> ``<unk>``, id 1) and
    False for a closed one (unknown words -> :class:`UnknownWordError`).
    """

    words: tuple[str, ...]
    unk: bool = False
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = tuple(self.words)
        specials = (PAD, UNK) if self.unk else (PAD,)
        if words[: len(specials)] != specials:
            raise ValueError(f"a vocabulary must start with {specials}, got {words[:2]}")
        if len(set(words)) != len(words):
            dupes = sorted(w for w, c in Counter(words).items() if c > 1)
            raise ValueError(f"duplicate words in vocabulary: {dupes}")
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(words)})

    # ---- construction -------------------------------------------------
    @classmethod
    def closed(cls, words: Iterable[str]) -> "Vocabulary":
        """A closed vocabulary over ``words`` (in the order given)."""
        return cls((PAD, *words), unk=False)

    @classmethod
    def from_corpus(cls, captions: Iterable[str | Sequence[str]], min_count: int = 5) -> "Vocabulary":
        """An open vocabulary: words seen at least ``min_count`` times, most frequent first."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts: Counter[str] = Counter()
        for c in captions:
            counts.update(tokenize(c) if isinstance(c, str) else c)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in (PAD, UNK)),
                      key=lambda w: (-counts[w], w))
        return cls((PAD, UNK, *kept), unk=True)

    def to_dict(self) -> dict:
        """Plain JSON-able form (what checkpoints and data files store)."""
        return {"words": list(self.words), "unk": self.unk}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        return cls(tuple(d["words"]), unk=bool(d["unk"]))

    # ---- lookup ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int | None:
        return 1 if self.unk else None

    @property
    def content_words(self) -> tuple[str, ...]:
        """The words without the special tokens."""
        return self.words[2:] if self.unk else self.words[1:]

    def encode(self, caption: str | Sequence[str]) -> list[int]:
        """Word ids of one caption (a string, or an already tokenised list)."""
        tokens = tokenize(caption) if isinstance(caption, str) else list(caption)
        if not tokens:
            raise EmptyCaptionError(f"the caption {caption!r} has no words; give at least one word")
        if self.unk:
            return [self._index.get(t, 1) for t in tokens]
        unknown = [t for t in tokens if t not in self._index or t == PAD]
        if unknown:
            raise UnknownWordError(
                f"unknown word(s) {sorted(set(unknown))} in caption {caption!r}. "
                f"This vocabulary is closed; the known words are: {' '.join(self.content_words)}"
            )
        return [self._index[t] for t in tokens]

    def decode(self, ids: Iterable[int], length: int | None = None) -> str:
        """Words of one caption, padding dropped (``length`` cuts it first)."""
        ids = [int(i) for i in ids][:length]
        return " ".join(self.words[i] for i in ids if i != 0)

    def encode_batch(self, captions: Sequence[str | Sequence[str]],
                     max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad a batch of captions: ``ids (M, L)`` int64 and ``lengths (M,)`` int64.

        ``max_len`` fixes N; a caption longer than that is an error, not a silent cut.
        """
        encoded = [self.encode(c) for c in captions]
        n = max(map(len, encoded)) if max_len is None else max_len
        too_long = [c for c, e in zip(captions, encoded) if len(e) > n]
        if too_long:
            raise ValueError(f"caption(s) longer than {n} words: {too_long[:3]}")
        return pad(encoded, n)

    def decode_batch(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> list[str]:
        lengths = [None] * len(ids) if lengths is None else lengths.tolist()
        return [self.decode(row.tolist(), n) for row, n in zip(ids, lengths)]
