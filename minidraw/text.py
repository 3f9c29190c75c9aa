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
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .runtime import seeded


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


# ---- the language model ------------------------------------------------------
def _check_lengths(lengths: Tensor, M: int, L: int) -> None:
    """Every caption has between 1 and L words; say which ones do not."""
    if lengths.shape != (M,):
        raise ValueError(f"lengths must have shape (M,) = ({M},), got {tuple(lengths.shape)}")
    bad = ((lengths < 1) | (lengths > L)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"caption lengths must be in 1..L = 1..{L}; captions {bad[:5]} have lengths "
                         f"{lengths[bad[:5]].tolist()} (a 0 length is an empty caption; a length > L "
                         f"points past the padded ids)")


class LanguageModel(nn.Module):
    """alignDRAW's language model: a bidirectional LSTM over the caption's word embeddings.

    A forward LSTM reads ``y_1 .. y_L`` left to right, a backward LSTM reads it right
    to left, each with ``m = hidden_size`` units; word ``j`` is represented by both
    states side by side::

        →h_j = LSTM_fwd(→h_{j−1}, E y_j)       (j = 1 .. L, from →h_0 = 0)
        ←h_j = LSTM_bwd(←h_{j+1}, E y_j)       (j = L .. 1, from ←h_{L+1} = 0)
        h^lang_j = [→h_j ; ←h_j]               (2m numbers)

    so →h_j summarises ``y_1 .. y_j`` and ←h_j summarises ``y_j .. y_L``. Here L is
    each caption's *own* length: the batch is packed, so the backward LSTM starts at
    the caption's last real word, never on padding, and padding changes no result.

    ``forward(ids (M, L), lengths (M,))`` -> ``h_lang (M, L, 2m)``, exactly 0 at padded
    positions, and ``mask (M, L)``, True on real words.
    """

    def __init__(self, vocab_size: int, embed_size: int = 128, hidden_size: int = 128) -> None:
        super().__init__()
        self.vocab_size, self.embed_size, self.hidden_size = vocab_size, embed_size, hidden_size
        self.size = 2 * hidden_size                                        # h^lang_j has 2m numbers
        self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=0)   # E; <pad> embeds to 0
        self.lstm = nn.LSTM(embed_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, ids: Tensor, lengths: Tensor, embedded: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """``embedded (M, L, e)``, if given, is E y_j already computed (a model that reads the embeddings too)."""
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (M, L), got {tuple(ids.shape)}")
        M, L = ids.shape
        n = lengths.detach().to("cpu", torch.long)                          # (M,)  pack wants CPU lengths
        _check_lengths(n, M, L)
        x = self.embed(ids) if embedded is None else embedded             # (M, L, e)  E y_j
        packed = pack_padded_sequence(x, n, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)                                         # each caption to its own length
        h_lang, _ = pad_packed_sequence(out, batch_first=True, total_length=L)  # (M, L, 2m)  [→h_j; ←h_j], 0 on pad
        mask = torch.arange(L, device=ids.device) < n.to(ids.device)[:, None]  # (M, L)  j < length
        return h_lang, mask

    def extra_repr(self) -> str:
        return f"size={self.size}"


def sentence_vector(h_lang: Tensor, mask: Tensor) -> Tensor:
    """The caption as one vector: the mean of ``h^lang_j`` over its real words, ``(M, 2m)``.

    ``h_lang (M, L, 2m)``, ``mask (M, L)``. noalignDRAW and the baselines condition on it.
    """
    w = mask.to(h_lang.dtype)                                              # (M, L)  1 on words, 0 on padding
    return (w[..., None] * h_lang).sum(1) / w.sum(1, keepdim=True)         # (M, 2m)  Σ_j h_j / length


class FrozenSentenceEncoder:
    """skipthoughtDRAW's sentence embedding: a frozen, pretrained encoder (an optional extra).

    The paper conditioned one variant on skip-thought vectors (Kiros et al., 2015),
    which can no longer be downloaded. A modern frozen sentence encoder takes
    their place: by default sentence-transformers' ``all-MiniLM-L6-v2`` (384
    numbers per caption). Install it with ``pip install 'minidraw[skipthought]'``;
    everything else in minidraw works without it. The encoder is never trained:
    its embeddings are computed once per caption and passed to the model as
    ``sentence``.
    """

    def __init__(self, model_name: str = "sentence-transformers/all-MiniLM-L6-v2", device: str | None = None):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError("the skipthought variant needs a frozen sentence encoder: "
                              "pip install 'minidraw[skipthought]' (sentence-transformers), "
                              "or pass your own embeddings as `sentence` (M, sentence_size)") from e
        self.model = SentenceTransformer(model_name, device=device)
        self.size = int(self.model.get_sentence_embedding_dimension())

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Embeddings ``(M, size)`` float32 of ``texts``."""
        if isinstance(texts, str):
            raise TypeError("give a list of captions, not one string")
        emb = torch.as_tensor(self.model.encode(list(texts), convert_to_numpy=True), dtype=torch.float32)
        if emb.shape != (len(texts), self.size):
            raise RuntimeError(f"the encoder returned {tuple(emb.shape)}, expected {(len(texts), self.size)}")
        return emb


# ---- a frozen sentence encoder we can pretrain offline ----------------------------------
class SentenceAutoencoder(nn.Module):
    """A caption autoencoder: the offline stand-in for skip-thought vectors.

    Skip-thought vectors (Kiros et al., 2015) are a sentence encoder trained on
    text alone — an RNN decoder must regenerate the neighbouring sentences from
    the encoder's vector — and then frozen. We train the same kind of thing on
    the captions themselves: the encoder is a :class:`LanguageModel` whose
    sentence vector ``s`` (the mean of h^lang_j) must let a one-layer LSTM
    decoder regenerate the caption word by word::

        s       = mean_j h^lang_j(y)                      (2m numbers)
        g_j     = LSTM_dec(g_{j−1}, [E' y_{j−1} ; s])      (y_0 = <pad> as start symbol)
        p(y_j | y_<j, s) = softmax(W g_j)
        loss    = −Σ_j log p(y_j | y_<j, s) / length        (nats per word)

    Nothing in the loss knows about images, so, like skip-thought, the vector is
    a property of the text alone; since "3 left of 7" and "7 left of 3" must be
    told apart to be regenerated, the vector keeps word order (a bag of words
    would not).
    """

    def __init__(self, vocab_size: int, embed_size: int = 32, hidden_size: int = 64) -> None:
        super().__init__()
        self.encoder = LanguageModel(vocab_size, embed_size, hidden_size)
        self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=0)   # E', the decoder's own
        self.decoder = nn.LSTM(embed_size + 2 * hidden_size, 2 * hidden_size, batch_first=True)
        self.out = nn.Linear(2 * hidden_size, vocab_size)                  # W

    def encode(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """The sentence vector ``s (M, 2m)``."""
        return sentence_vector(*self.encoder(ids, lengths))

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Reconstruction loss, nats per word, ``(M,)``."""
        M, L = ids.shape
        s = self.encode(ids, lengths)                                      # (M, 2m)
        prev = torch.cat([torch.zeros_like(ids[:, :1]), ids[:, :-1]], 1)   # (M, L)  y_{j−1}, y_0 = <pad>
        inp = torch.cat([self.embed(prev), s[:, None].expand(M, L, -1)], -1)  # (M, L, e + 2m)
        g, _ = self.decoder(inp)                                           # (M, L, 2m)
        logp = torch.log_softmax(self.out(g), -1)                          # (M, L, V)
        nll = -logp.gather(-1, ids[..., None])[..., 0]                     # (M, L)  −log p(y_j | y_<j, s)
        mask = torch.arange(L, device=ids.device) < lengths.to(ids.device)[:, None]  # (M, L)
        return (nll * mask).sum(1) / mask.sum(1)                           # (M,)


def pretrain_sentence_encoder(dataset, vocab_size: int, embed_size: int = 32, hidden_size: int = 64,
                              steps: int = 500, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                              progress: bool = False) -> tuple[LanguageModel, float]:
    """Train a :class:`SentenceAutoencoder` on ``dataset``'s captions; return its frozen encoder.

    ``dataset.batch(indices)`` must give ``.captions (M, L)`` and ``.lengths (M,)``. Returns the
    encoder (``requires_grad`` off, eval mode) and the last reconstruction loss in nats per word.
    Captions are drawn from a seeded generator, so the result is a function of ``seed``.
    """
    from tqdm.auto import tqdm

    with seeded(seed):
        model = SentenceAutoencoder(vocab_size, embed_size, hidden_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng([seed, 7])
    n = len(dataset)
    loss = float("nan")
    for _ in tqdm(range(steps), disable=not progress, desc="sentence encoder", unit="step"):
        b = dataset.batch(rng.integers(0, n, batch_size))
        value = model(b.captions, b.lengths).mean()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        loss = value.item()
    encoder = model.encoder.eval().requires_grad_(False)
    return encoder, loss
