"""Retrieval metrics on score matrices with known answers, chance level, and SSIM."""
import numpy as np
import pytest
import torch

from minidraw import checkpoint, configs
from minidraw.configs import preset
from minidraw.measures import ranks_of_truth, retrieval_metrics, ssi


def test_hand_made_scores_give_known_ranks_and_recalls():
    scores = np.array([[1.0, 2.0, 3.0, 4.0],    # own image best: rank 1
                       [3.0, 1.0, 2.0, 4.0],    # two candidates better: rank 3
                       [5.0, 1.0, 2.0, 3.0],    # worst: rank 4
                       [2.0, 2.0, 1.0, 9.0]])   # tie with candidate 1, one better: rank 3
    assert ranks_of_truth(scores).tolist() == [1, 3, 4, 3]
    r = retrieval_metrics(scores, ks=(1, 3))
    assert r.recall == {1: 25.0, 3: 75.0} and r.median_rank == 3.0
    assert retrieval_metrics(scores[:, ::-1], ks=(1,), truth=3).ranks.tolist() == [1, 3, 4, 3]


def test_all_equal_scores_get_no_credit():
    r = retrieval_metrics(np.zeros((5, 100)))
    assert r.recall[1] == 0.0 and r.median_rank == 100


def test_random_scores_are_at_chance_level():
    rng = np.random.default_rng(0)
    r = retrieval_metrics(rng.random((20_000, 100)))
    for k in (1, 5, 10, 50):
        assert abs(r.recall[k] - k) < 1.5, (k, r.recall[k])     # chance: R@K = K %
    assert abs(r.median_rank - 50) <= 1.5                         # and median rank 50


def test_bad_scores_are_rejected():
    with pytest.raises(ValueError, match="candidates"):
        retrieval_metrics(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[0.0, np.nan]]))


def test_ssim_of_an_image_with_itself_is_one_and_noise_lowers_it():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    assert ssi(x, x) == pytest.approx(1.0)
    assert ssi(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1)) < 0.9
    assert ssi(torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)) < 0.01
    with pytest.raises(ValueError, match="must both be"):
        ssi(x, x[:, :1])


class _Numbered:
    """Example i: an image of constant grey i/N and a one-word caption whose id is i + 1."""

    N = 150

    def __len__(self):
        return self.N

    def batch(self, idx):
        from minidraw.data.common import CaptionBatch
        idx = torch.as_tensor(np.asarray(idx))
        images = (idx.float() / self.N)[:, None, None, None].expand(-1, 1, 4, 4)
        return CaptionBatch(images, (idx + 1)[:, None], torch.ones(len(idx), dtype=torch.long))


class _FiveCaptions(_Numbered):
    """Like MS-COCO: example k is caption k % 5 of image k // 5 (N images, 5 N captions). All five
    captions of an image say the same, so only the image itself explains a caption best."""

    def __len__(self):
        return 5 * self.N

    def image_of(self, idx):
        return np.asarray(idx) // 5

    def batch(self, idx):
        b = super().batch(np.asarray(idx) // 5)
        b.meta["example"] = torch.as_tensor(np.asarray(idx))
        return b


class _Matcher(torch.nn.Module):
    """A stand-in model whose bound is small when the image's grey level matches the caption."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.cfg = type("Cfg", (), {"T": 2, "z_size": 3})

    def forward(self, images, captions, lengths, noise=None):
        assert noise.shape == (2, len(images), 3)
        value = (captions[:, 0].float() - 1) / _Numbered.N
        return type("Out", (), {"bound": (images.mean((1, 2, 3)) - value).abs() + self.w})


def test_retrieval_scores_put_the_own_image_first_and_rank_it():
    from minidraw.measures import retrieval_scores
    scores = retrieval_scores(_Matcher(), _Numbered(), n_queries=30, n_candidates=100, batch_size=64)
    assert scores.shape == (30, 100)
    assert (scores[:, 0] < 1e-6).all() and (scores[:, 1:] > 1e-3).all()        # column 0: the own image
    r = retrieval_metrics(scores)
    assert r.recall[1] == 100.0 and r.median_rank == 1
    with pytest.raises(ValueError, match="distinct candidates"):
        retrieval_scores(_Matcher(), _Numbered(), n_queries=5, n_candidates=100, pool=50)


def test_retrieval_candidates_are_other_images_when_an_image_has_five_captions():
    from minidraw.measures import retrieval_candidates, retrieval_scores
    data = _FiveCaptions()
    queries, cand = retrieval_candidates(data, n_queries=60, n_candidates=100, seed=3)
    images = cand // 5                                                          # the image of every candidate
    assert (cand[:, 0] == queries).all()
    for row in images:
        assert row[0] not in row[1:]                   # never another caption of the query's own image
        assert len(set(row.tolist())) == 100           # 100 distinct images
    assert queries.max() > 0.8 * len(data) and queries.min() < 0.2 * len(data)   # spread over the split
    assert len(set(queries.tolist())) == 60
    # a perfect model ranks every caption's own image first: a duplicate of it would tie, and ties count against it
    r = retrieval_metrics(retrieval_scores(_Matcher(), data, n_queries=60, n_candidates=100, seed=3))
    assert r.recall[1] == 100.0 and r.median_rank == 1
    with pytest.raises(ValueError, match="distinct images cannot give"):
        retrieval_candidates(data, n_queries=5, n_candidates=100, pool=400)    # 400 captions: only 80 images


def test_retrieval_scores_with_a_real_alignDRAW_and_common_noise():
    from minidraw.configs import preset
    from minidraw.data.shapes import ShapesCaptions
    from minidraw.measures import retrieval_scores
    from minidraw.models import build
    torch.manual_seed(0)
    model = build(preset("aligndraw_shapes_small", T=3, enc_size=16, dec_size=16, z_size=4, lang_size=8,
                         align_size=8, embed_size=8))
    data = ShapesCaptions("test")
    a = retrieval_scores(model, data, n_queries=4, n_candidates=10, pool=20, batch_size=7)
    b = retrieval_scores(model, data, n_queries=4, n_candidates=10, pool=20, batch_size=40)
    assert a.shape == (4, 10) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-5)      # batching does not change a score: ε is per caption
    assert model.training


# ---- the bound on a split, generation, the table row, the command -----------------------------
def tiny_aligndraw(seed=0):
    from minidraw.configs import preset
    from minidraw.models import build
    torch.manual_seed(seed)
    return build(preset("aligndraw_shapes_small", T=3, enc_size=16, dec_size=16, z_size=4, lang_size=8,
                        align_size=8, embed_size=8))


def test_estimate_is_the_mean_and_its_standard_error():
    from minidraw.measures import Estimate
    v = torch.tensor([1.0, 2.0, 4.0, 9.0])
    e = Estimate.of(v)
    assert e.n == 4 and e.mean == pytest.approx(4.0)
    assert e.se == pytest.approx(np.std([1, 2, 4, 9], ddof=1) / 2)
    assert str(Estimate(1.234, 0.5, 3)) == "1.23 ± 0.50"


def test_split_bound_matches_a_naive_loop_and_leaves_the_rng_alone():
    from minidraw.data.shapes import ShapesCaptions
    from minidraw.measures import bound
    model, data = tiny_aligndraw(), ShapesCaptions("test")
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    e = bound(model, data, n=30, batch_size=7, seed=5)
    assert torch.equal(torch.rand(1), expected_next)                     # the caller's RNG is untouched
    torch.manual_seed(5)                                                  # naive: same seed, same batches
    model.eval()
    naive = []
    for i in range(0, 30, 7):
        b = data.batch(np.arange(i, min(30, i + 7)))
        naive.append(model(b.images, b.captions, b.lengths).bound)
    naive = torch.cat(naive)
    assert e.n == 30 and e.mean == pytest.approx(naive.mean().item(), rel=1e-5)
    assert e.se == pytest.approx(naive.std().item() / np.sqrt(30), rel=1e-4)
    assert bound(model, data, n=30, batch_size=30, seed=5).mean == pytest.approx(e.mean, rel=0.05)


def test_iwae_on_a_split_is_tighter_than_the_bound_and_works_unconditionally():
    from minidraw.data.shapes import ShapesCaptions
    from minidraw.draw import Draw, DrawConfig
    from minidraw.measures import bound, iwae
    model, data = tiny_aligndraw(), ShapesCaptions("test")
    single = np.mean([bound(model, data, n=16, seed=s).mean for s in range(6)])   # E[−L] over ε
    tight = iwae(model, data, n=16, K=20, images_per_pass=64)
    assert tight.n == 16 and tight.mean < single                          # −L_K ≤ E[−L]
    torch.manual_seed(0)
    draw = Draw(DrawConfig(A=8, B=8, T=2, read_N=2, write_N=2, enc_size=8, dec_size=8, z_size=3))
    x = (torch.rand(10, 1, 8, 8) > 0.5).float()
    assert np.isfinite(iwae(draw, x, n=10, K=5).mean) and bound(draw, x, n=10).n == 10


def test_generate_one_image_per_caption_seeded():
    from minidraw.data.shapes import ShapesCaptions
    from minidraw.measures import generate
    model, data = tiny_aligndraw(), ShapesCaptions("test")
    g, t = generate(model, data, n=9, seed=1, batch_size=4)
    assert g.shape == t.shape == (9, 3, 32, 32) and 0 <= g.min() and g.max() <= 1
    torch.testing.assert_close(t, data.batch(np.arange(9)).images)
    torch.testing.assert_close(generate(model, data, n=9, seed=1, batch_size=4)[0], g)
    assert not torch.equal(generate(model, data, n=9, seed=2, batch_size=4)[0], g)
    assert model.training


def test_evaluate_row_and_table():
    from minidraw.data.shapes import ShapesCaptions
    from minidraw.evaluate import Sizes, evaluate, markdown_table
    model = tiny_aligndraw()
    splits = {"train": ShapesCaptions("train"), "test": ShapesCaptions("test")}
    sizes = Sizes(bound=20, iwae=4, K=3, queries=6, candidates=10, ssi=5)
    row = evaluate(model, splits, ["bound", "iwae", "retrieval", "ssi"], sizes)
    assert row["iwae_tightening"] > -5                                    # −L_K ≤ −L on the same images, up to noise
    for key in ("train_bound", "test_bound", "test_iwae", "iwae_tightening", "R@1", "R@5", "R@10", "R@50", "med_r", "ssi"):
        assert np.isfinite(row[key]), key
    from minidraw.measures import bound, retrieval_scores  # the row is what each measure gives alone
    direct = retrieval_metrics(retrieval_scores(model, splits["test"], 6, 10, seed=0))
    assert {k: row[f"R@{k}"] for k in (1, 5, 10, 50)} == direct.recall and row["med_r"] == direct.median_rank
    assert row["test_bound"] == pytest.approx(bound(model, splits["test"], 20).mean)
    assert row["train_bound"] == pytest.approx(bound(model, splits["train"], 20).mean)
    table = markdown_table({"tiny": row, "empty": {}})
    assert table.splitlines()[0].startswith("| model | train −L | test −L | test −L_K | −L − (−L_K) | R@1")
    assert table.splitlines()[-1].startswith("| empty | – |")
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(model, splits, ["bound", "fid"])


def test_evaluate_command_on_a_checkpoint(tmp_path, capsys):
    import json

    from minidraw import cli, train
    cfg = configs.load_config("aligndraw_shapes_small", sets=[
        "max_steps=2", "batch_size=4", "eval_every=0", "eval_examples=4", "model.T=2", "model.enc_size=8",
        "model.dec_size=8", "model.z_size=3", "model.lang_size=4", "model.align_size=4", "model.embed_size=4"])
    train.run(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "row.json"
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--metrics",
                     "bound,retrieval", "--bound", "8", "--queries", "5", "--json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["step"] == 2 and np.isfinite(row["test_bound"]) and "R@10" in row and "ssi" not in row
    # which compositions each number is on: the reported held-out ones and the validation ones, named
    assert row["splits"]["heldout"].startswith("held-out compositions, reported: ")
    assert row["splits"]["heldout-val"].startswith("validation compositions, for choices: ")
    assert "seen compositions only (no held-out and validation pair)" in row["splits"]["test"]
    assert "| run |" in capsys.readouterr().out
    capsys.readouterr()
    for argv, message in ((["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--metrics", "bleu"],
                           "unknown metric"),
                          (["--checkpoint", str(tmp_path / "nothing.pt")], "no checkpoint")):
        assert cli.main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_file_from_before_the_validation_compositions_is_scored_without_them(mnist_dir):
    """A file whose training settings predate ``heldout_val`` (the shipped ones are all newer now: one of them with
    that setting taken out stands for it) trained on the validation compositions, so it is scored without them."""
    from minidraw import pretrained
    from minidraw.evaluate import splits_for
    old = checkpoint.read(pretrained.path("noaligndraw-mnist"))
    assert old["train"]["heldout_val"] is True
    old["train"] = {k: v for k, v in old["train"].items() if k != "heldout_val"}    # as written before the setting
    ckpt = checkpoint.upgrade(old)
    assert ckpt["train"]["heldout_val"] is False                     # its training saw those scenes
    splits = splits_for(ckpt["train"], preset("aligndraw_mnist_small"), str(mnist_dir))
    assert "heldout" in splits and "heldout-val" not in splits and not splits["test"].validation


def test_evaluate_with_a_corrupt_mnist_file_is_one_line(tmp_path, capsys, mnist_dir):
    import shutil
    from dataclasses import asdict

    from minidraw import cli, train
    from minidraw.draw import Draw
    data = tmp_path / "mnist"
    data.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", data)
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    ckpt = tmp_path / "draw.pt"
    checkpoint.save(ckpt, Draw(preset("draw_mnist_small", T=2)), {"train": asdict(configs.TrainConfig())})
    assert cli.main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--metrics", "bound"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minidraw evaluate: error: ") and err.count("\n") == 1, err
    assert "t10k-images-idx3-ubyte.gz" in err


class _Oracle(torch.nn.Module):
    """A stand-in generator that draws the true image of each caption it has seen (or black)."""

    def __init__(self, dataset, n):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.cfg = preset("aligndraw_mnist_small")            # its kind: a caption-to-image drawing model
        b = dataset.batch(np.arange(n))
        self.table = {tuple(c[:k].tolist()): x for c, k, x in zip(b.captions, b.lengths, b.images)}

    def generate(self, captions, lengths):
        images = torch.stack([self.table[tuple(c[:k].tolist())] for c, k in zip(captions, lengths)])
        return type("Generated", (), {"images": images})


def test_fidelity_column_of_a_perfect_and_a_blind_generator(pools, tmp_path):
    from minidraw.data.mnist_captions import MnistCaptions
    from minidraw.evaluate import Sizes, evaluate
    splits = {"train": MnistCaptions("train", pools), "test": MnistCaptions("test", pools),
              "heldout": MnistCaptions("heldout", pools)}
    oracle = _Oracle(splits["test"], 60)
    oracle.table.update(_Oracle(splits["heldout"], 60).table)
    row = evaluate(oracle, splits, ["fidelity"], Sizes(fidelity=60), classifiers=tmp_path)
    assert row["fidelity_seen"] >= 95 and row["fidelity_heldout"] >= 95, row
    assert set(row["fidelity_seen_by_template"]) <= {"left of", "right of", "top of", "bottom of", "top left corner",
                                                     "top right corner", "bottom left corner", "bottom right corner"}
    for key in oracle.table:
        oracle.table[key] = torch.zeros_like(oracle.table[key])              # draws nothing at all
    row = evaluate(oracle, splits, ["fidelity"], Sizes(fidelity=60), classifiers=tmp_path)
    assert row["fidelity_seen"] == 0 and row["fidelity_heldout"] == 0


def test_the_comparison_names_five_buildable_models_per_data_set():
    from minidraw import train
    from minidraw.configs import COMPARISON_ROWS, COMPARISON_SETTINGS, comparison, preset
    from minidraw.models import build
    for data in ("mnist", "shapes"):
        rows = comparison(data)
        assert list(rows) == list(COMPARISON_ROWS)
        kinds = set()
        for key, (name, sets) in rows.items():
            cfg = configs.load_config(name, sets=[*COMPARISON_SETTINGS, *sets])
            model_cfg = preset(cfg.preset, **cfg.model)
            kinds.add((type(build(model_cfg)).__name__, getattr(model_cfg, "variant", None),
                       getattr(model_cfg, "kind", None)))
        assert len(kinds) == 5                                      # five different models
    with pytest.raises(KeyError, match="no preset"):
        comparison("mnist", size="paper")


def test_evaluate_refuses_sizes_below_one_and_an_unwritable_json_before_it_evaluates(tmp_path, capsys):
    from minidraw import checkpoint
    from minidraw.cli import main
    from minidraw.models import build
    path = tmp_path / "m.pt"
    checkpoint.save(path, build(preset("aligndraw_shapes_small", T=2, enc_size=8, dec_size=8, z_size=2)),
                    {"train": {"preset": "aligndraw_shapes_small", "model": {}}})
    for argv in (["--metrics", "iwae", "--iwae", "5", "--k", "0"], ["--bound", "-1"]):
        with pytest.raises(SystemExit) as e:
            main(["evaluate", "--checkpoint", str(path), *argv])
        err = capsys.readouterr().err
        assert e.value.code == 2 and "must be at least 1" in err.splitlines()[-1] and "Traceback" not in err
    assert main(["evaluate", "--checkpoint", str(path), "--json", str(tmp_path / "no" / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write --json" in err
