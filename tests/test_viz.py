"""The book's figures: the one alignment convention (words down the y-axis, steps along x)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from minidraw import viz  # noqa: E402


def test_alignment_map_puts_words_on_y_steps_on_x_and_marks_each_steps_top_word():
    words = "the digit 3 is on the left".split()
    alpha = torch.softmax(torch.randn(5, 9), -1)            # (T, L) with 2 padding columns
    alpha[:, 7:] = 0
    ax = Figure().subplots()
    im = viz.alignment_map(ax, alpha, words)
    data = im.get_array()
    assert data.shape == (7, 5)                              # (words, steps), padding dropped
    assert np.allclose(data, alpha[:, :7].T.numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == words
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "5"]
    dots = ax.lines[0].get_ydata()
    assert list(dots) == alpha[:, :7].argmax(1).tolist()      # the most attended word at each step
    assert im.get_cmap().name == viz.ALIGNMENT_CMAP and im.norm.vmin == 0


def test_canvases_with_alignment_lines_up_one_panel_per_step():
    T = 4
    fig = viz.canvases_with_alignment(torch.rand(T, 1, 8, 8), torch.softmax(torch.randn(T, 3), -1), ["a", "b", "c"])
    assert len(fig.axes) == T + 1
    assert [a.get_title() for a in fig.axes[:T]] == [f"t={t}" for t in range(1, T + 1)]
    assert len(viz.canvases_with_alignment(torch.rand(T, 3, 8, 8), None, None).axes) == T   # no caption: canvases


def test_show_source_displays_every_call(monkeypatch):
    """Two calls in one cell show two listings: show_source displays, it does not return."""
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    assert viz.show_source(viz.to_numpy_image) is None
    assert viz.show_source(viz.image_grid) is None
    assert [type(o).__name__ for o in shown] == ["Code", "Code"]
    assert "def to_numpy_image" in shown[0].data and "def image_grid" in shown[1].data


def test_an_animation_plays_offline():
    """matplotlib's player links font-awesome from a CDN; animation_html keeps every button and loads nothing."""
    canvases = torch.rand(3, 1, 12, 10)                                      # (T, C, B, A)
    anim = viz.animate_drawing(canvases, title="t")
    html = viz.animation_html(anim)
    assert "font-awesome" not in html and "https://" not in html and "fa fa-" not in html
    for action in ("first_frame", "previous_frame", "play_animation", "pause_animation", "next_frame", "last_frame"):
        assert f".{action}()" in html                                        # the buttons are all there
    assert html.count("<button") == anim.to_jshtml().count("<button")
    assert html.count("data:image/png;base64") >= 3                          # every frame, inline
