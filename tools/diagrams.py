"""Block diagrams of the book's five models, drawn from code with matplotlib alone.

    python tools/diagrams.py [OUT_DIR]          # default: book/figures

writes ``draw.svg`` (DRAW, two steps unrolled), ``aligndraw.svg`` (the paper's alignDRAW, one step),
``whatwhere.svg`` (ours: the generator split into a *where* and a *what* LSTM), ``lapgan_level.svg``
(one LAPGAN level that sharpens a drawing) and ``captioner.svg`` (a soft-attention image-to-text
captioner). One colour per kind of block (legend under each diagram); dashed: used in training only.
The files are deterministic (fixed SVG ids, no date, glyphs as paths), so running the script again
gives byte-identical files; tests/test_book.py checks that the committed ones are up to date.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import matplotlib.style
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.path import Path as MplPath
from matplotlib.text import Text

OUT = Path(__file__).resolve().parents[1] / "book" / "figures"
UNIT = 0.5                       # inches per drawing unit: a 9-inch-wide figure is 18 units
LEGEND = 0.7                     # units under the drawing for the legend
FONT, SMALL = 10, 9
INK = "#333333"
# kind: (fill, edge, legend entry) — the book's colour cycle (book/matplotlibrc), lightened for fills
KINDS = {
    "input": ("#eeeeee", "#7f7f7f", "input"),
    "net": ("#dbe9f6", "#1f77b4", "network"),
    "attn": ("#fde5cc", "#ff7f0e", "attention, read, write"),
    "latent": ("#dcf0da", "#2ca02c", "latent variable"),
    "image": ("#ebe3f3", "#9467bd", "canvas, image"),
    "loss": ("#f8dada", "#d62728", "training term"),
}
Point = tuple[float, float]


@dataclass(frozen=True)
class Node:
    """A drawn box: centre (x, y), width w, height h (drawing units)."""
    x: float
    y: float
    w: float
    h: float
    patch: Patch

    def at(self, side: str, shift: float = 0.0) -> Point:
        """A point on the edge: side 'l', 'r', 't' or 'b', moved ``shift`` along it."""
        return {"l": (self.x - self.w / 2, self.y + shift), "r": (self.x + self.w / 2, self.y + shift),
                "t": (self.x + shift, self.y + self.h / 2), "b": (self.x + shift, self.y - self.h / 2)}[side]


def new(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of ``width`` x ``height`` drawing units (y from 0 up) over a strip for the legend."""
    fig = Figure(figsize=(width * UNIT, (height + LEGEND) * UNIT))
    FigureCanvasAgg(fig)                      # a renderer, to measure text
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(-LEGEND, height)
    ax.axis("off")
    return fig, ax


def box(ax: Axes, xy: Point, text: str, kind: str, w: float | None = None, h: float = 0.8,
        dashed: bool = False, size: int = FONT) -> Node:
    """A rounded box with a centred label; ``w=None``: as wide as the label needs."""
    fill, edge, _ = KINDS[kind]
    label = ax.text(*xy, text, ha="center", va="center", fontsize=size, color=INK, zorder=4)
    ext = label.get_window_extent(ax.figure.canvas.get_renderer())
    tw, th = ext.width / ax.figure.dpi / UNIT, ext.height / ax.figure.dpi / UNIT
    w = tw + 0.4 if w is None else w
    if tw + 0.2 > w or th + 0.1 > h:
        raise ValueError(f"{text!r} needs a {tw + 0.2:.2f} x {th + 0.1:.2f} box, has {w} x {h}")
    patch = FancyBboxPatch((xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.15",
                           fc=fill, ec=edge, lw=1.2, ls=(0, (4, 2)) if dashed else "-", zorder=3)
    ax.add_patch(patch)
    return Node(xy[0], xy[1], w, h, patch)


def plus(ax: Axes, xy: Point, sign: str = "+") -> Node:
    """A small circle holding an operator (a sum of two images)."""
    patch = Circle(xy, 0.3, fc="white", ec=INK, lw=1.0, zorder=3)
    ax.add_patch(patch)
    ax.text(*xy, sign, ha="center", va="center", fontsize=FONT + 1, color=INK, zorder=4)
    return Node(xy[0], xy[1], 0.6, 0.6, patch)


End = Union[Node, Point]


def arrow(ax: Axes, a: End, b: End, label: str = "", via: Sequence[Point] = (), at: Point | None = None,
          dashed: bool = False, both: bool = False) -> None:
    """An arrow from a to b (a box's edge where a or b is a box), through the points ``via``; ``label``
    sits at ``at`` (default: the middle of the first segment) on a white ground."""
    ls = (0, (4, 2)) if dashed else "-"
    style = dict(arrowstyle="<|-|>" if both else "-|>", mutation_scale=10, color=INK, lw=1.0, ls=ls, zorder=2)
    if via:
        start = a if not isinstance(a, Node) else (a.x, a.y)
        end = b if not isinstance(b, Node) else (b.x, b.y)
        points = [start, *via, end]
        path = MplPath(points, [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1))
        ax.add_patch(FancyArrowPatch(path=path, **style))
    else:
        pa, pb = (a.x, a.y) if isinstance(a, Node) else a, (b.x, b.y) if isinstance(b, Node) else b
        ax.add_patch(FancyArrowPatch(pa, pb, patchA=a.patch if isinstance(a, Node) else None,
                                     patchB=b.patch if isinstance(b, Node) else None, shrinkA=0, shrinkB=0, **style))
        points = [pa, pb]
    if label:
        if at is None:
            (x0, y0), (x1, y1) = points[0], points[1]
            at = ((x0 + x1) / 2, (y0 + y1) / 2)
        ax.text(*at, label, ha="center", va="center", fontsize=SMALL, color=INK, zorder=5,
                bbox=dict(fc="white", ec="none", pad=0.6))


def region(ax: Axes, x0: float, y0: float, x1: float, y1: float, label: str, where: str = "tl") -> None:
    """A dashed, faintly shaded area behind boxes used only in training, its label in a corner."""
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.2",
                                fc="#fafafa", ec="#7f7f7f", lw=1.0, ls=(0, (4, 2)), zorder=1))
    x = x0 + 0.15 if where[1] == "l" else x1 - 0.15
    y = y1 - 0.12 if where[0] == "t" else y0 + 0.12
    ax.text(x, y, label, ha="left" if where[1] == "l" else "right", va="top" if where[0] == "t" else "bottom",
            fontsize=SMALL, style="italic", color="#555555", zorder=1)


def note(ax: Axes, xy: Point, text: str, **kw) -> None:
    """Free text (no box)."""
    ax.text(*xy, text, fontsize=kw.pop("fontsize", SMALL), color=kw.pop("color", INK), zorder=5,
            ha=kw.pop("ha", "center"), va=kw.pop("va", "center"), **kw)


def legend(ax: Axes, kinds: Sequence[str], training: bool = True) -> None:
    """One row under the diagram: a swatch per kind of block, and the dashed training-only mark."""
    handles = [Patch(fc=KINDS[k][0], ec=KINDS[k][1], label=KINDS[k][2]) for k in kinds]
    if training:
        handles.append(Patch(fc="white", ec="#7f7f7f", ls=(0, (4, 2)), label="training only"))
    ax.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=SMALL, frameon=False,
              handlelength=1.6, columnspacing=1.2, borderaxespad=0.2)


def check(fig: Figure) -> None:
    """Fail when two pieces of text overlap (labels, notes, legend entries) or anything leaves the figure."""
    fig.canvas.draw()                         # lays the legend out
    renderer = fig.canvas.get_renderer()
    texts = {id(t): t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()}.values()
    extents = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    for what, e in extents + [(repr(p), p.get_window_extent(renderer)) for p in fig.axes[0].patches]:
        if not (0 <= e.x0 and e.x1 <= fig.bbox.x1 and 0 <= e.y0 and e.y1 <= fig.bbox.y1):
            raise ValueError(f"{what} leaves the figure")
    for i, (s, e) in enumerate(extents):
        for s2, e2 in extents[i + 1:]:
            if e.overlaps(e2):
                raise ValueError(f"labels overlap: {s!r} and {s2!r}")


def stub(ax: Axes, node: Node, text: str, side: str = "t", length: float = 1.0, dashed: bool = False) -> None:
    """An input from outside the drawing (an earlier step's state): a short arrow, ``text`` at its tail."""
    x, y = node.at(side)
    dx, dy = {"t": (0, 1), "b": (0, -1), "l": (-1, 0), "r": (1, 0)}[side]
    arrow(ax, (x + dx * length, y + dy * length), (x, y), dashed=dashed)
    note(ax, (x + dx * (length + 0.1), y + dy * (length + 0.1)), text, va={1: "bottom", -1: "top"}.get(dy, "center"),
         ha={1: "left", -1: "right"}.get(dx, "center"))


def chain(ax: Axes, y: float, x0: float, items: Sequence[tuple], gap: float = 0.35) -> dict[str, Node]:
    """Boxes left to right from x = x0 at height y, ``gap`` apart: items (key, text, kind, w[, h[, dashed]])."""
    nodes, x = {}, x0
    for key, text, kind, w, *rest in items:
        nodes[key] = box(ax, (x + w / 2, y), text, kind, w, *rest)
        x += w + gap
    return nodes


# --- the five diagrams ---------------------------------------------------------------------------------

def draw_diagram() -> Figure:
    """DRAW (Gregor et al. 2015): steps t and t+1, one per row; training-only parts dashed."""
    fig, ax = new(18, 8.6)
    x = box(ax, (0.45, 4.45), "$x$", "input", w=0.7, h=3.9, dashed=True)
    rows = []
    for y, t, p in ((5.85, "t", "t-1"), (3.05, "t+1", "t")):
        rows.append(chain(ax, y, 1.1, gap=0.33, items=[
            ("err", f"$x,\\ \\hat{{x}}_{{{t}}} = x - \\sigma(c_{{{p}}})$", "input", 2.7, 0.8, True),
            ("read", "read\n$N{\\times}N$ glimpse", "attn", 2.05, 1.0, True),
            ("enc", f"encoder\n$h^{{enc}}_{{{t}}}$", "net", 1.45, 1.0, True),
            ("q", f"$Q(z_{{{t}}}\\,|\\,h^{{enc}}_{{{t}}})$", "latent", 2.05, 0.8, True),
            ("z", f"$z_{{{t}}}$", "latent", 0.85),
            ("dec", f"decoder\n$h^{{dec}}_{{{t}}}$", "net", 1.45, 1.0),
            ("write", f"write $w_{{{t}}}$\n$N{{\\times}}N$ patch", "attn", 1.75, 1.0),
            ("c", f"canvas $c_{{{t}}}$\n$= c_{{{p}}} + w_{{{t}}}$", "image", 2.1, 1.0)]))
        arrow(ax, (x.x + x.w / 2, y), rows[-1]["err"], dashed=True)
        for a, b in (("err", "read"), ("read", "enc"), ("enc", "q"), ("q", "z"), ("z", "dec"), ("dec", "write"),
                     ("write", "c")):
            arrow(ax, rows[-1][a], rows[-1][b], dashed=a in ("err", "read", "enc", "q"))
    top, bottom = rows
    region(ax, 0.05, 2.2, top["q"].x + top["q"].w / 2 + 0.16, 6.8, "training only: inference")
    for k in ("enc", "dec", "c"):                                  # the recurrences, t -> t+1
        arrow(ax, top[k], bottom[k], dashed=k == "enc")
    for k, s in (("enc", "h^{enc}_{t-1}"), ("dec", "h^{dec}_{t-1}"), ("c", "c_{t-1}")):
        stub(ax, top[k], f"${s}$", length=0.9, dashed=k == "enc")
    for k, dx in (("read", 0.4), ("enc", -0.2)):                   # h^dec_t: where step t+1 reads
        arrow(ax, top["dec"].at("b", -0.4), bottom[k].at("t", dx), dashed=True)
    c, e = top["c"].at("b", -0.7), bottom["err"].at("t", -0.7)
    arrow(ax, c, e, via=[(c[0], 4.45), (e[0], 4.45)], dashed=True, label="$c_t$", at=(3.4, 4.45))
    z = top["z"]
    prior = box(ax, (z.x - 1.2, 8.05), "generation: $z_t \\sim P(z_t) = \\mathcal{N}(0, I)$", "latent", w=None)
    arrow(ax, (z.x, prior.y - prior.h / 2), z)
    out = box(ax, (14.75, 0.75), "after $T$ steps:  $P(x\\,|\\,c_T) = \\mathrm{Bernoulli}(\\sigma(c_T))$", "image",
              w=5.8)
    arrow(ax, bottom["c"].at("b"), (bottom["c"].x, out.y + out.h / 2), label="$\\cdots$")
    legend(ax, ["input", "net", "attn", "latent", "image"])
    return fig


def aligndraw_diagram() -> Figure:
    """The paper's alignDRAW (Mansimov et al. 2016): the language model and one step t of the generator."""
    fig, ax = new(18, 9.0)
    # the language model: words -> embeddings -> bidirectional LSTM -> alignment -> s_t
    ax.add_patch(FancyBboxPatch((0.15, 1.75), 5.9, 1.65, boxstyle="round,pad=0,rounding_size=0.2",
                                fc="#f3f8fd", ec=KINDS["net"][1], lw=1.0, zorder=1))
    note(ax, (0.3, 3.3), "bidirectional LSTM", ha="left", va="top", style="italic")
    langs = []
    for xk, k in ((1.0, "1"), (2.7, "2"), (5.1, "L")):
        word = box(ax, (xk, 0.85), f"$y_{k}$", "input", w=0.9, h=0.7)
        langs.append(box(ax, (xk, 2.3), f"$h^{{lang}}_{k}$", "net", w=1.1, h=0.75))
        arrow(ax, word, langs[-1])
    note(ax, (1.55, 1.45), "embed", ha="left")
    for y in (0.85, 2.3):
        note(ax, (3.9, y), "$\\cdots$", fontsize=FONT)
    arrow(ax, langs[0], langs[1], both=True)
    note(ax, (3.1, 0.2), "caption of $L$ words", style="italic")
    align = box(ax, (3.1, 4.45), "alignment  $\\alpha^t_j \\propto \\exp(v^\\top \\tanh(U h^{lang}_j"
                " + W h^{gen}_{t-1}))$", "attn", w=5.9, size=SMALL)
    for lang in langs:
        arrow(ax, lang, (lang.x, align.y - align.h / 2))
    s = box(ax, (3.1, 6.3), "$s_t = \\sum_j \\alpha^t_j\\, h^{lang}_j$", "attn", w=2.8, h=1.0)
    arrow(ax, align, s)
    # one step t of the generator
    prev = box(ax, (7.25, 4.45), "$h^{gen}_{t-1}$", "net", w=1.4)
    arrow(ax, prev, align)
    g = chain(ax, 6.3, 6.9, gap=0.35, items=[
        ("prior", "prior $p(z_t\\,|\\,h^{gen}_{t-1}) =$\n$\\mathcal{N}(\\mu(h^{gen}_{t-1}), \\sigma(h^{gen}_{t-1}))$",
         "latent", 3.15, 1.0, False, SMALL),
        ("z", "$z_t$", "latent", 0.85),
        ("gen", "generator\n$h^{gen}_t$", "net", 1.65, 1.0),
        ("write", "write $w_t$", "attn", 1.4),
        ("c", "canvas\n$c_t = c_{t-1} + w_t$", "image", 2.1, 1.0)])
    for a, b in (("prior", "z"), ("z", "gen"), ("gen", "write"), ("write", "c")):
        arrow(ax, g[a], g[b])
    arrow(ax, prev, g["prior"].at("b", -1.0))
    arrow(ax, s.at("t"), g["gen"].at("t"), via=[(s.x, 8.2), (g["gen"].x, 8.2)], label="$s_t$", at=(6.0, 8.2))
    stub(ax, g["c"], "$c_{t-1}$", length=0.9)
    out = box(ax, (g["c"].x, 2.8), "after $T$ steps:\n$\\sigma(c_T)$ ($A{\\times}B$)", "image", w=2.3, h=1.0)
    arrow(ax, g["c"], out)
    arrow(ax, prev.at("r"), g["gen"].at("b", 0.3), via=[(g["gen"].x + 0.3, prev.y)], label="recurrence",
          at=(12.1, prev.y))
    # inference: training only
    region(ax, 6.15, 0.1, 12.6, 3.3, "training only: inference", where="tr")
    x = box(ax, (6.95, 0.75), "image $x$", "input", w=1.4, h=0.7, dashed=True)
    err = box(ax, (9.35, 0.75), "$\\hat{x}_t = x - \\sigma(c_{t-1})$", "input", w=2.5, h=0.7, dashed=True)
    read = box(ax, (7.25, 2.3), "read", "attn", w=1.1, dashed=True)
    infer = box(ax, (9.1, 2.3), "$h^{infer}_t$", "net", w=1.2, dashed=True)
    q = box(ax, (g["z"].x, 2.3), "$q(z_t\\,|\\,h^{infer}_t)$", "latent", w=1.9, dashed=True)
    for a, b in ((x, read), (err, read), (read, infer), (infer, q), (prev, read), (prev, infer)):
        arrow(ax, a, b, dashed=True)
    arrow(ax, q, g["z"], dashed=True)
    legend(ax, ["input", "net", "attn", "latent", "image"])
    return fig


def whatwhere_diagram() -> Figure:
    """Ours: alignDRAW's generator split into a *where* LSTM (the window) and a *what* LSTM (the patch)."""
    fig, ax = new(18, 9.2)
    # the caption: embeddings, BiLSTM keys, alignment asked by h^where, two contexts
    cap = box(ax, (1.3, 0.75), "caption $y_1 \\ldots y_L$", "input", w=2.5)
    emb = box(ax, (1.3, 2.35), "embeddings\n$E\\,y_j$", "net", w=2.0, h=1.0)
    lang = box(ax, (4.45, 2.35), "BiLSTM\n$h^{lang}_j$", "net", w=1.9, h=1.0)
    align = box(ax, (4.45, 4.1), "alignment $\\alpha^t_j$ from\n$h^{where}_{t-1}$ and $h^{lang}_j$", "attn", w=2.8,
                h=1.2)
    s = box(ax, (1.3, 5.85), "layout\n$s_t = \\sum_j \\alpha^t_j\\, E y_j$", "attn", w=2.2, h=1.2)
    s_what = box(ax, (4.45, 5.85), "content words ($m_j{=}1$)\n$s^{what}_t = \\sum_j \\alpha^t_j\\, m_j\\, E y_j$",
                 "attn", w=3.4, h=1.3)
    for a, b in ((cap, emb), (emb, lang), (lang, align), (emb, s), (align, s), (align, s_what)):
        arrow(ax, a, b)
    # the two LSTMs, their priors and latents, the window and the patch
    wh = chain(ax, 7.75, 6.35, gap=0.4, items=[
        ("prior", "$p(z^{where}_t\\,|\\,h^{where}_{t-1})$", "latent", 2.4),
        ("z", "$z^{where}_t$", "latent", 1.1),
        ("lstm", "where LSTM\n$h^{where}_t$", "net", 1.95, 1.0),
        ("out", "window\n$g_X, g_Y, \\delta, \\sigma^2, \\gamma$", "attn", 2.1, 1.0)])
    wt = chain(ax, 5.2, 6.35, gap=0.4, items=[
        ("prior", "$p(z^{what}_t\\,|\\,h^{what}_{t-1})$", "latent", 2.4),
        ("z", "$z^{what}_t$", "latent", 1.1),
        ("lstm", "what LSTM\n$h^{what}_t$", "net", 1.95, 1.0),
        ("out", "patch\n$N{\\times}N$ pixels", "attn", 2.1, 1.0)])
    for row in (wh, wt):
        for a, b in (("prior", "z"), ("z", "lstm"), ("lstm", "out")):
            arrow(ax, row[a], row[b])
    arrow(ax, s.at("t"), wh["lstm"].at("t"), via=[(s.x, 8.85), (wh["lstm"].x, 8.85)], label="$s_t$",
          at=(6.0, 8.85))
    arrow(ax, s_what.at("t"), wt["lstm"].at("t"), via=[(s_what.x, 6.55), (wt["lstm"].x, 6.55)],
          label="$s^{what}_t$", at=(7.6, 6.55))
    write = box(ax, (16.75, 6.45), "write $w_t$", "attn", w=1.5)
    canvas = box(ax, (16.75, 4.45), "canvas\n$c_t = c_{t-1} + w_t$", "image", w=2.1, h=1.0)
    out = box(ax, (16.75, 2.55), "after $T$ steps:\n$\\sigma(c_T)$", "image", w=2.1, h=1.0)
    for a, b in ((wh["out"], write), (wt["out"], write), (write, canvas), (canvas, out)):
        arrow(ax, a, b)
    # training only: inference, the adversary, the objective
    region(ax, 6.2, 0.1, 15.3, 3.85, "training only", where="tr")
    q = box(ax, (8.5, 2.9), "inference (reads $x$, as alignDRAW)\n$q(z^{where}_t, z^{what}_t\\,|\\,h^{infer}_t)$",
            "latent", w=None, h=1.0, dashed=True, size=SMALL)
    adv = box(ax, (12.95, 2.9), "adversary $f(h^{what}_t)$ reads\nthe caption's layout words", "net", w=3.7,
              h=1.0, dashed=True, size=SMALL)
    loss = box(ax, (10.7, 0.85), "NLL $+\\ \\beta\\,\\mathrm{KL}^{where} + \\mathrm{KL}^{what}$"
               " $+\\ \\lambda\\,$adversary:  $f$ learns the layout words,\n"
               "$h^{what}$ learns to leave $f$ at the blind guess (word frequencies)",
               "loss", w=8.6, h=1.0, dashed=True, size=SMALL)
    arrow(ax, q.at("t", 1.4), wt["z"], dashed=True)
    zx = wh["z"].x - 0.25
    arrow(ax, q.at("t", 0.55), (zx, wh["z"].y - wh["z"].h / 2), via=[(q.x + 0.55, 6.85), (zx, 6.85)], dashed=True)
    arrow(ax, wt["lstm"].at("b", 0.5), adv.at("t", -0.45), dashed=True)
    for a in (q, adv):
        arrow(ax, a, (a.x, loss.y + loss.h / 2), dashed=True)
    legend(ax, ["input", "net", "attn", "latent", "image", "loss"])
    return fig


def lapgan_diagram() -> Figure:
    """One LAPGAN level (Denton et al. 2015) as alignDRAW uses it: a residual of high frequencies for a blurry image."""
    fig, ax = new(18, 6.0)
    y, top = 3.0, 4.55                                            # the main row; the line that carries l over G
    draw = box(ax, (1.0, y), "alignDRAW\ndrawing", "image", w=1.8, h=1.0)
    m = chain(ax, y, 3.35, gap=0.55, items=[
        ("l", "coarse $l$", "image", 1.6),
        ("g", "generator\n$G$", "net", 1.65, 1.0),
        ("h", "residual $\\tilde h$\n(high frequencies)", "image", 2.8, 1.0)])
    add = plus(ax, (m["h"].x + m["h"].w / 2 + 0.85, y))
    sharp = box(ax, (add.x + 1.85, y), "sharpened\n$l + \\tilde h$", "image", w=1.9, h=1.0)
    d = box(ax, (16.5, y), "discriminator\n$D$", "net", w=2.3, h=1.2, dashed=True)
    arrow(ax, draw, m["l"], label="upsample", at=((draw.x + m["l"].x) / 2 + 0.05, y + 0.45))
    note(ax, (m["l"].x, y - 0.65), "in training: $l = u(d(x))$", va="top", fontsize=SMALL - 1, style="italic")
    for a, b in ((m["l"], m["g"]), (m["g"], m["h"]), (m["h"], add), (add, sharp)):
        arrow(ax, a, b)
    arrow(ax, sharp, d, label="generated", at=((sharp.x + sharp.w / 2 + d.x - d.w / 2) / 2, y + 0.8))
    z = box(ax, (m["g"].x - 0.9, 0.9), "noise $z$", "latent", w=1.4, h=0.7)
    cap = box(ax, (m["g"].x + 1.75, 0.9), "caption embedding", "input", w=3.0, h=0.7)
    arrow(ax, z, m["g"].at("b", -0.35))
    arrow(ax, cap, m["g"].at("b", 0.35))
    arrow(ax, m["l"].at("t"), add.at("t"), via=[(m["l"].x, top), (add.x, top)])
    arrow(ax, (add.x, top), d.at("t", -0.6), via=[(d.x - 0.6, top)], label="condition: $l$", at=(13.4, top))
    arrow(ax, cap.at("r"), d.at("b", -0.5), via=[(d.x - 0.5, cap.y)], label="condition: caption", at=(12.6, cap.y))
    real = box(ax, (d.x, 5.55), "real $x = l + h$", "input", w=2.5, h=0.7, dashed=True)
    arrow(ax, (d.x + 0.6, real.y - real.h / 2), d.at("t", 0.6), label="real", at=(d.x + 0.6, top), dashed=True)
    arrow(ax, d.at("b", 0.5), (d.x + 0.5, 1.25), dashed=True)
    note(ax, (d.x + 0.5, 1.15), "real or\ngenerated?", va="top", style="italic")
    legend(ax, ["input", "net", "latent", "image"])
    return fig


def captioner_diagram() -> Figure:
    """An image-to-text captioner with soft attention (Xu et al. 2015, Show, Attend and Tell): word step t."""
    fig, ax = new(18, 5.9)
    img = box(ax, (0.85, 3.0), "image\n$x$", "input", w=1.3, h=1.0)
    cnn = box(ax, (2.85, 3.0), "small\nCNN", "net", w=1.4, h=1.0)
    cells = []                                                    # the grid of L feature vectors a_l
    for i in range(3):
        for j in range(3):
            cells.append(FancyBboxPatch((4.4 + 0.42 * i, 2.37 + 0.42 * j), 0.38, 0.38, boxstyle="square,pad=0",
                                        fc=KINDS["input"][0], ec=KINDS["input"][1], lw=0.8, zorder=3))
            ax.add_patch(cells[-1])
    grid = Node(5.01, 3.0, 1.3, 1.3, cells[4])
    note(ax, (grid.x, 1.95), "$a_1 \\ldots a_Q$: features\nof $Q$ grid cells", va="top")
    arrow(ax, img, cnn)
    arrow(ax, cnn.at("r"), (4.35, 3.0))
    att = box(ax, (8.75, 4.6), "attention over the cells\n$\\alpha^t_i \\propto \\exp\\, e(a_i, h_{t-1})$", "attn",
              w=3.5, h=1.0)
    ctx = box(ax, (8.75, 2.25), "context\n$\\hat z_t = \\sum_i \\alpha^t_i\\, a_i$", "attn", w=2.5, h=1.2)
    lstm = box(ax, (12.0, 2.25), "LSTM\n$h_t$", "net", w=1.3, h=1.0)
    emb = box(ax, (12.0, 0.55), "previous word $E\\,y_{t-1}$", "input", w=3.2, h=0.7)
    outp = box(ax, (14.95, 2.25), "$p(y_t\\,|\\,y_{<t}, x)$\n$= \\mathrm{softmax}(W_o[h_t; \\hat z_t])$", "net",
               w=3.0, h=1.0, size=SMALL)
    word = box(ax, (17.35, 2.25), "$y_t$", "input", w=0.9)
    arrow(ax, (5.7, 3.3), att, label="$a_i$", at=(6.4, 4.05))
    arrow(ax, (5.7, 2.6), ctx, label="$a_i$", at=(6.4, 2.45))
    arrow(ax, att, ctx, label="$\\alpha^t_i$", at=(9.35, 3.45))
    for a, b in ((ctx, lstm), (emb, lstm), (lstm, outp)):
        arrow(ax, a, b)
    arrow(ax, outp, word, label="greedy\nor beam", at=(17.35, 3.55))
    arrow(ax, lstm.at("t"), att.at("r"), via=[(lstm.x, att.y)], label="$h_{t-1}$", at=(lstm.x, 3.6))
    arrow(ax, word.at("b"), emb.at("r"), via=[(word.x, emb.y)], label="next step's input\n(training: the true word)",
          at=(15.6, emb.y))
    note(ax, (0.2, 5.5), "word step $t$ ($h_0$ from the mean of the $a_i$)", ha="left", style="italic")
    legend(ax, ["input", "net", "attn"], training=False)
    return fig


DIAGRAMS: dict[str, Callable[[], Figure]] = {
    "draw.svg": draw_diagram,
    "aligndraw.svg": aligndraw_diagram,
    "whatwhere.svg": whatwhere_diagram,
    "lapgan_level.svg": lapgan_diagram,
    "captioner.svg": captioner_diagram,
}


def write_all(out: Path = OUT) -> list[Path]:
    """Draw every diagram into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.style.context("default"), rc_context({"svg.hashsalt": "minidraw", "svg.fonttype": "path"}):
        for name, make in DIAGRAMS.items():
            fig = make()
            check(fig)
            fig.savefig(out / name, format="svg", metadata={"Date": None, "Creator": None})
            written.append(out / name)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path, path.stat().st_size, "bytes")
