"""image2text: a soft-attention captioner (Xu et al., 2015, "Show, Attend and Tell").

The other direction from alignDRAW: read a picture, write its caption. A small CNN turns the
image into a grid of Q feature vectors ``a_1 .. a_Q`` (one per cell of a coarse grid; two more
numbers per cell give the cell's coordinates (ξ, η) in [−1, 1], so *where* is as easy to read as
*what*). Xu et al. write L for the number of cells; the book keeps L for the caption's length.
An LSTM then writes the caption one word at a time; before each word it looks at the grid with
the same Bahdanau alignment that alignDRAW's generator uses to look at the caption
(:class:`minidraw.align.Alignment`)::

    h_0, c_0  = tanh(W_{h_0} ā), tanh(W_{c_0} ā)            ā = (1/Q) Σ_i a_i
    e_i^t     = vᵀ tanh(U a_i + W h_{t−1} + b)                (i = 1 .. Q)
    α^t       = softmax_i(e^t),   ẑ_t = Σ_i α_i^t a_i         where the word looks (Xu et al.'s context ẑ_t)
    h_t       = LSTM(h_{t−1}, [E y_{t−1} ; ẑ_t])
    p(y_t | y_<t, x) = softmax(W_o [h_t ; ẑ_t] + b_o)

**Content words** (ours, an option the shipped captioners use): the words that name what is in
the picture — digits; sizes, colours, shapes and backgrounds — can be scored from the attended
features alone, ``W_content ẑ_t + b_content`` (without the cell's coordinates), while the LSTM state
still scores every other word and so decides *when* a content word comes. Scored from ``[h_t ; ẑ_t]``,
a content word also learns the caption's statistics: if no training picture has a 3 on the left,
"the digit 3 is on the left" is a sentence the LSTM has learnt never to say, and a picture of one
is captioned with another digit. Scored from what is seen, it cannot learn that.

**Position words** (ours, ``position_first`` to ``position_last``): content words scored from the
features still leave the words that say *where* — "left", "top", "above" — to the LSTM, whose
state knows which digit it has just named. On held-out scenes that is most of the mistakes: with
no training picture of a 4 in the left slot, "the digit 4 is on the" is followed by "right", the
only relation the LSTM ever saw after a 4. Position words are scored instead from where the step
looked (ẑ_t's two coordinates) and from a small *grammar* LSTM that reads the words so far with
every content word as one shared token, so it knows the sentence's shape ("on the" wants left or
right; "at the top" wants left, right or of) and never which digit was named::

    g_t = LSTM_g(g_{t−1}, E ỹ_{t−1})        ỹ: the word, content words as one token
    p(y_t = a position word | ·) ∝ exp(MLP([g_t ; ξ_t ; η_t]))     (ξ_t, η_t): where α^t looked

Word id 0 (``<pad>``) doubles as the start symbol (y_0) and as the end of the caption: the
model learns to emit 0 after the last word, so a caption of n words is n + 1 predictions.

**Training**: teacher forcing — the true previous word goes in — and the cross-entropy of the
caption, in nats per caption; padding beyond a caption's end is masked out, so padding never
changes the loss.

**Decoding**: :meth:`Captioner.greedy` takes the most likely word each step;
:meth:`Captioner.beam` keeps the ``width`` most likely partial captions. Finished captions are
ranked by log p(y | x) / (n + 1)^λ (λ = ``length_penalty``; 0, the default, ranks by the
log-probability itself). Beam search is not guaranteed to beat greedy decoding (the greedy
path can fall out of the beam early), so the greedy caption is kept as one more candidate: the
caption returned never scores below greedy's.

Shapes: M images ``(M, C, B, A)`` — A is the width and B the height, as everywhere in the
book — Q grid cells, D' = ``feature_size`` + 2 numbers per cell, captions of L words (padded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .align import Alignment
from .outputs import ConfigDict
from .runtime import eval_mode, evaluating


def _scored(logits: Tensor, first: int, scores: Tensor) -> Tensor:
    """``logits (M, V)`` with the columns first .. first + K − 1 replaced by ``scores (M, K)``."""
    return torch.cat([logits[:, :first], scores, logits[:, first + scores.shape[1]:]], -1)


@dataclass(repr=False)
class CaptionerConfig(ConfigDict):
    """Sizes of a :class:`Captioner`. The grid is B/(stem_stride·2^pools) by A/(stem_stride·2^pools)."""

    # Withdrawn: what_where (the LSTM and the non-content words reading only where each step looked, never what it
    # saw) was measured worse and never shipped (the captioner-mnist card's notes); files that stored it off load.
    WITHDRAWN: ClassVar[dict[str, object]] = {"what_where": False}

    A: int = 60               # image width
    B: int = 60               # image height
    C: int = 1                # channels
    vocab_size: int = 23      # word ids, <pad> included (0: set by the data, e.g. COCO's vocabulary)
    channels: int = 32        # filters of the CNN's first convolution; each pooling stage doubles them
    stem_stride: int = 2      # stride of the first (5×5) convolution
    pools: int = 2            # 3×3 convolution + 2×2 max-pooling stages after it
    feature_size: int = 64    # numbers per grid cell, before the 2 coordinates
    embed_size: int = 32      # word embedding
    hidden_size: int = 128    # the LSTM decoder
    align_size: int = 64      # the alignment's dimension
    max_len: int = 20         # longest caption decoding writes (words, the end not counted)
    # Ours, not Xu et al.'s: word ids content_first..content_last (inclusive; 0, 0: none) name what is in the
    # picture (digits; sizes, colours, shapes, backgrounds) and are scored from the attended image features
    # alone, not from the LSTM state — see "content words" in the module's docstring
    content_first: int = 0
    content_last: int = 0
    # Ours: word ids position_first..position_last (0, 0: none) say where something is (left, right, top, ...) and
    # are scored from the attended cell's coordinates and a grammar LSTM of grammar_size units that reads the
    # words with every content word as one token — never from which digit was named. See "position words" above.
    position_first: int = 0
    position_last: int = 0
    grammar_size: int = 32

    def __post_init__(self) -> None:
        self._require(1, "A", "B", "C", "channels", "stem_stride", "feature_size", "embed_size", "hidden_size",
                      "align_size", "max_len")
        self._require(0, "vocab_size", "pools", "content_first", "content_last")
        if self.content_first or self.content_last:
            if not 1 <= self.content_first <= self.content_last or (self.vocab_size and self.content_last >= self.vocab_size):
                raise ValueError(f"content words must be ids 1 <= content_first <= content_last < vocab_size "
                                 f"({self.vocab_size}), got {self.content_first}..{self.content_last}")
        self._require(0, "position_first", "position_last")
        self._require(1, "grammar_size")
        if self.position_first or self.position_last:
            if not self.content_last:
                raise ValueError("position words need content words (the grammar LSTM reads them as one token): "
                                 "give content_first and content_last")
            if not 1 <= self.position_first <= self.position_last or (self.vocab_size and self.position_last >= self.vocab_size):
                raise ValueError(f"position words must be ids 1 <= position_first <= position_last < vocab_size "
                                 f"({self.vocab_size}), got {self.position_first}..{self.position_last}")
            if self.position_first <= self.content_last and self.content_first <= self.position_last:
                raise ValueError(f"position words {self.position_first}..{self.position_last} overlap the content "
                                 f"words {self.content_first}..{self.content_last}")
        if min(self.A, self.B) < self.stem_stride * 2 ** self.pools:
            raise ValueError(f"a {self.A}×{self.B} image is too small for stem_stride={self.stem_stride} and "
                             f"pools={self.pools}: the grid would be empty")

    def __repr__(self) -> str:
        return f"CaptionerConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the feature grid."""
        rows, cols = -(-self.B // self.stem_stride), -(-self.A // self.stem_stride)   # 'same' padding, strided
        for _ in range(self.pools):
            rows, cols = rows // 2, cols // 2
        return rows, cols


@dataclass
class CaptionerOutput:
    """One teacher-forced pass: ``loss (M,)`` = −log p(y | x) in nats per caption, and what the
    training log reports."""

    loss: Tensor         # (M,)  −Σ_t log p(y_t | y_<t, x)
    correct: Tensor      # (M,)  words (and ends) whose most likely prediction was right
    count: Tensor        # (M,)  n + 1 predictions per caption
    alpha: Tensor        # (M, L + 1, Q)  where each prediction looked

    def metrics(self) -> dict[str, float]:
        return {"word_acc": (self.correct.sum() / self.count.sum()).item(),
                "nats_per_word": (self.loss.sum() / self.count.sum()).item()}


@dataclass
class Decoded:
    """Decoded captions: ``ids`` (M lists of word ids, the end dropped), ``log_prob (M,)`` =
    log p(y | x) of each (its end included), and ``alpha (M, L + 1, Q)``, where each word looked
    (rows past a caption's end are zero)."""

    ids: list[list[int]]
    log_prob: Tensor
    alpha: Tensor


class Encoder(nn.Module):
    """CNN: image ``(M, C, B, A)`` -> grid ``(M, Q, D')`` with each cell's coordinates (ξ, η) appended."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cfg.C, cfg.channels, 5, stride=cfg.stem_stride, padding=2), nn.ReLU()]
        width = cfg.channels
        for _ in range(cfg.pools):
            layers += [nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width *= 2
        layers += [nn.Conv2d(width, cfg.feature_size, 3, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        rows, cols = cfg.grid
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, rows), torch.linspace(-1, 1, cols), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys], -1).reshape(1, rows * cols, 2), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        f = self.net(images)                                             # (M, F, rows, cols)
        f = f.flatten(2).transpose(1, 2)                                 # (M, Q, F)
        return torch.cat([f, self.coords.expand(f.shape[0], -1, -1)], -1)  # (M, Q, D')  a_i = [f_i ; ξ_i ; η_i]


class Captioner(nn.Module):
    """The soft-attention captioner. ``forward(images, captions, lengths)`` is the training loss;
    :meth:`greedy` and :meth:`beam` write captions."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        if cfg.vocab_size < 2:
            raise ValueError("a captioner needs a vocabulary: give vocab_size (the data sets it for COCO)")
        self.cfg = cfg
        D = cfg.feature_size + 2
        self.encoder = Encoder(cfg)
        self.init_h, self.init_c = nn.Linear(D, cfg.hidden_size), nn.Linear(D, cfg.hidden_size)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_size)       # id 0: start and end
        self.align = Alignment(D, cfg.hidden_size, cfg.align_size)      # the alignment alignDRAW uses
        self.lstm = nn.LSTMCell(cfg.embed_size + D, cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size + D, cfg.vocab_size)       # W_o [h_t ; ẑ_t] + b_o
        self.content = None
        if cfg.content_last:                                     # content words: W_content ẑ_t^features + b_content
            self.content = nn.Linear(cfg.feature_size, cfg.content_last - cfg.content_first + 1)
        self.grammar = self.position = None
        if cfg.position_last:                                            # position words: MLP([g_t ; ξ_t ; η_t])
            self.grammar = nn.LSTMCell(cfg.embed_size, cfg.grammar_size)
            self.position = nn.Sequential(nn.Linear(cfg.grammar_size + 2, cfg.grammar_size), nn.Tanh(),
                                          nn.Linear(cfg.grammar_size, cfg.position_last - cfg.position_first + 1))

    # ---- pieces ---------------------------------------------------------------------------------
    def _check(self, images: Tensor) -> None:
        want = (self.cfg.C, self.cfg.B, self.cfg.A)
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(f"images must have shape (M, C, B, A) = (M, {want[0]}, {want[1]}, {want[2]}) for this "
                             f"captioner, got {tuple(images.shape)}")

    def start(self, images: Tensor):
        """The grid, its alignment keys, and (h_0, c_0) for ``images``."""
        self._check(images)
        a = self.encoder(images)                                         # (M, Q, D')
        mean = a.mean(1)                                                 # (M, D')  ā
        state = (torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))
        if self.grammar is not None:                                     # (h, c, g, c^g): g_0 = 0
            g = mean.new_zeros(mean.shape[0], self.cfg.grammar_size)
            state = state + (g, g.clone())
        return a, self.align.keys(a), state

    def step(self, word: Tensor, state, a: Tensor, keys: Tensor):
        """One word: ``word (M,)`` = y_{t−1} -> log p(y_t | ·) ``(M, V)``, the new state, α^t ``(M, Q)``.
        The state is ``(h, c)``, or ``(h, c, g, c^g)`` with position words."""
        cfg = self.cfg
        mask = torch.ones(a.shape[:2], dtype=torch.bool, device=a.device)
        z, alpha = self.align(state[0], keys, a, mask, checked=True)    # ẑ_t = Σ_i α_i a_i  (M, D')
        h = self.lstm(torch.cat([self.embed(word), z], -1), state[:2])   # h_t = LSTM(h_{t−1}, [E y_{t−1} ; ẑ_t])
        logits = self.out(torch.cat([h[0], z], -1))                      # (M, V)  W_o [h_t ; ẑ_t] + b_o
        if self.content is not None:                                     # content words: from what is seen only
            logits = _scored(logits, cfg.content_first, self.content(z[:, : cfg.feature_size]))
        if self.grammar is None:
            return F.log_softmax(logits, -1), h, alpha
        blind = torch.where((word >= cfg.content_first) & (word <= cfg.content_last), cfg.content_first, word)  # ỹ
        g = self.grammar(self.embed(blind), state[2:])                   # g_t = LSTM_g(g_{t−1}, E ỹ_{t−1})
        where = self.position(torch.cat([g[0], z[:, cfg.feature_size:]], -1))  # MLP([g_t ; ξ_t ; η_t])
        return F.log_softmax(_scored(logits, cfg.position_first, where), -1), h + g, alpha

    # ---- training ---------------------------------------------------------------------------------
    def forward(self, images: Tensor, captions: Tensor, lengths: Tensor) -> CaptionerOutput:
        """Teacher-forced −log p(caption | image), ``captions (M, L)`` padded with 0, ``lengths (M,)``."""
        M, L = captions.shape                                            # the padded caption length
        if lengths.shape != (M,) or bool((lengths < 1).any()) or bool((lengths > L).any()):
            raise ValueError(f"lengths must be (M,) = ({M},) whole numbers in 1..{L} (every caption needs a word)")
        zero = captions.new_zeros(M, 1)
        inputs = torch.cat([zero, captions], 1)                          # (M, L + 1)  y_0 = 0 (start), y_1 ..
        targets = torch.cat([captions, zero], 1)                         # (M, L + 1)  y_1 .. y_n, 0 (end)
        t = torch.arange(L + 1, device=captions.device)
        keep = t[None, :] <= lengths[:, None]                            # (M, L + 1)  predictions 0..n
        targets = targets.masked_fill(t[None, :] == lengths[:, None], 0)  # the end, even if padding held words
        a, keys, state = self.start(images)
        steps = int(lengths.max())                                       # nothing past the longest caption
        logps, alphas = [], []
        for i in range(steps + 1):
            logp, state, alpha = self.step(inputs[:, i], state, a, keys)
            logps.append(logp)
            alphas.append(alpha)
        logp = torch.stack(logps, 1)                                     # (M, n_max + 1, V)
        target, keep = targets[:, : steps + 1], keep[:, : steps + 1]
        nll = -logp.gather(-1, target[..., None]).squeeze(-1) * keep     # (M, n_max + 1)
        correct = (logp.argmax(-1) == target) & keep
        alpha = torch.stack(alphas, 1) * keep[..., None]                 # (M, n_max + 1, Q)
        return CaptionerOutput(nll.sum(1), correct.sum(1).float(), keep.sum(1).float(), alpha.detach())

    def log_prob(self, images: Tensor, captions: Tensor, lengths: Tensor) -> Tensor:
        """log p(caption | image) ``(M,)``, the end included."""
        return -self(images, captions, lengths).loss

    @torch.no_grad()
    def test_metrics(self, batches) -> dict[str, float]:
        """The training log's numbers on held-back ``batches`` of ``(images, captions, lengths)``:
        ``test_nats_per_word``, ``test_word_acc`` (teacher-forced) and ``test_exact`` (the greedy caption
        is word for word the reference)."""
        nats = words = correct = exact = total = 0.0
        with evaluating(self, 0) as dev:
            for images, captions, lengths in batches:
                images, captions, lengths = images.to(dev), captions.to(dev), lengths.to(dev)
                out = self(images, captions, lengths)
                nats += out.loss.sum().item()
                correct += out.correct.sum().item()
                words += out.count.sum().item()
                got = self.greedy(images).ids
                exact += sum(g == c[: int(n)].tolist() for g, c, n in zip(got, captions, lengths))
                total += len(images)
        return {"test_nats_per_word": nats / words, "test_word_acc": correct / words, "test_exact": exact / total}

    # ---- decoding ---------------------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, images: Tensor, max_len: Optional[int] = None) -> Decoded:
        """The most likely word at every step, until the end (id 0) or ``max_len`` words."""
        max_len = max_len or self.cfg.max_len
        a, keys, state = self.start(images)
        M = images.shape[0]
        word = torch.zeros(M, dtype=torch.long, device=images.device)
        done = torch.zeros(M, dtype=torch.bool, device=images.device)
        total = images.new_zeros(M)
        ids, alphas = [], []
        for i in range(max_len + 1):
            logp, state, alpha = self.step(word, state, a, keys)
            word = logp.argmax(-1) if i < max_len else torch.zeros_like(word)  # (M,)  after max_len words: the end
            total = total + torch.where(done, 0.0, logp.gather(-1, word[:, None]).squeeze(-1))
            alphas.append(alpha * (~done)[:, None])
            ids.append(torch.where(done, 0, word))
            done = done | (word == 0)
            if bool(done.all()):
                break
        ids_ = torch.stack(ids, 1).tolist()
        return Decoded([_until_end(row) for row in ids_], total, torch.stack(alphas, 1))

    @torch.no_grad()
    def beam(self, images: Tensor, width: int = 3, max_len: Optional[int] = None,
             length_penalty: float = 0.0) -> Decoded:
        """Beam search with ``width`` partial captions per image; finished captions are ranked by
        log p / (n + 1) to the power ``length_penalty``. Width 1 is greedy decoding."""
        if width < 1:
            raise ValueError(f"width must be 1 or more, got {width}")
        max_len = max_len or self.cfg.max_len
        M, k, dev = images.shape[0], width, images.device
        a, keys, state = self.start(images)
        Q, V = a.shape[1], self.cfg.vocab_size                          # Q grid cells, V words
        rep = lambda x: x.repeat_interleave(k, 0)                        # noqa: E731  (M, ...) -> (M·k, ...)
        a, keys, state = rep(a), rep(keys), tuple(rep(x) for x in state)
        score = torch.full((M, k), float("-inf"), device=dev)
        score[:, 0] = 0.0                                                # one live beam to start with
        words = torch.zeros(M, k, 0, dtype=torch.long, device=dev)       # (M, k, t)
        alphas = images.new_zeros(M, k, 0, Q)
        done = torch.zeros(M, k, dtype=torch.bool, device=dev)
        word = torch.zeros(M * k, dtype=torch.long, device=dev)
        for i in range(max_len + 1):
            logp, state, alpha = self.step(word, state, a, keys)
            logp = logp.view(M, k, V)
            finished = torch.full_like(logp, float("-inf"))
            finished[..., 0] = 0.0                                       # a finished caption only "ends" again
            logp = torch.where(done[..., None], finished, logp)
            if i == max_len:                                             # after max_len words: the end
                logp = torch.where(torch.arange(V, device=dev) == 0, logp, float("-inf"))
            cand = (score[..., None] + logp).view(M, k * V)              # (M, k·V)
            score, index = cand.topk(k, -1)                              # (M, k)
            beam, word_ = index // V, index % V
            pick = lambda x: x.gather(1, beam.view(M, k, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))  # noqa: E731
            words = torch.cat([pick(words), word_[..., None]], -1)
            alpha = pick(alpha.view(M, k, Q)) * (~pick(done))[..., None]  # α of each chosen beam's source
            alphas = torch.cat([pick(alphas), alpha[:, :, None]], 2)
            done = pick(done) | (word_ == 0)
            flat = (beam + torch.arange(M, device=dev)[:, None] * k).view(-1)
            state = tuple(x[flat] for x in state)
            word = word_.view(-1)
            if bool(done.all()):
                break
        n = (words != 0).sum(-1).float()                                 # words in each caption
        ranked = score / (n + 1) ** length_penalty                       # (M, k)
        best = ranked.argmax(-1)                                         # (M,)
        rows = torch.arange(M, device=dev)
        ids = [_until_end(row) for row in words[rows, best].tolist()]
        log_prob, alpha = score[rows, best], alphas[rows, best]
        greedy = self.greedy(images, max_len)                            # a candidate too: never worse
        g_rank = greedy.log_prob / (torch.tensor([len(g) for g in greedy.ids], device=dev) + 1.0) ** length_penalty
        better = g_rank > ranked[rows, best]
        T = max(alpha.shape[1], greedy.alpha.shape[1])
        alpha, g_alpha = (F.pad(x, (0, 0, 0, T - x.shape[1])) for x in (alpha, greedy.alpha))
        return Decoded([g if b else i for g, i, b in zip(greedy.ids, ids, better.tolist())],
                       torch.where(better, greedy.log_prob, log_prob),
                       torch.where(better[:, None, None], g_alpha, alpha))

    def caption(self, images: Tensor, vocab, width: int = 1, max_len: Optional[int] = None) -> list[str]:
        """Captions of ``images (M, C, B, A)`` in [0, 1] as strings: greedy with ``width=1``, else beam."""
        with eval_mode(self):
            out = self.greedy(images, max_len) if width == 1 else self.beam(images, width, max_len)
        return [vocab.decode(ids) for ids in out.ids]


def _until_end(row: list[int]) -> list[int]:
    """Word ids up to (not including) the first end (0)."""
    return row[: row.index(0)] if 0 in row else row
