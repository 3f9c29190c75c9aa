"""The trainer: configuration, exact resumption, failures that lose nothing, many processes."""
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from minidraw import checkpoint, configs, evaluate, optim, rundir, train
from minidraw.configs import preset
from minidraw.data.batches import Batches
from minidraw.draw import Draw
from minidraw.models import build

TINY = ["model.T=2", "model.enc_size=16", "model.dec_size=16", "model.z_size=4",
        "batch_size=16", "eval_examples=64", "eval_every=0", "checkpoint_every=2", "seed=3"]


@pytest.fixture(autouse=True)
def _offline_mnist(monkeypatch, mnist_dir):
    monkeypatch.setenv("MINIDRAW_DATA", str(mnist_dir.parent))


def tiny(*more) -> configs.TrainConfig:
    return configs.load_config("draw_mnist_small", None, [*TINY, *more])


def test_config_layers_defaults_toml_and_sets(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('preset = "aligndraw_shapes_small"\nlr = 0.003\nbf16 = false\n[model]\nT = 4\nvariant = "noalign"\n')
    cfg = configs.load_config(None, f, ["batch_size=32", "model.z_size=8", "lr=1e-2", "max_steps=1e3"])
    assert (cfg.preset, cfg.lr, cfg.bf16, cfg.batch_size, cfg.max_steps) == ("aligndraw_shapes_small", 1e-2, False, 32, 1000)
    assert cfg.model == {"T": 4, "variant": "noalign", "z_size": 8}
    m = preset(cfg.preset, **cfg.model)
    assert (m.T, m.variant, m.z_size, m.cond_size) == (4, "noalign", 8, 2 * m.lang_size)
    for bad, msg in ((["lr"], "key=value"), (["learning_rate=1"], "unknown training setting"),
                     (["model.Z=1"], "unknown model field"), (["bf16=maybe"], "true or false")):
        with pytest.raises(ValueError, match=msg):
            configs.load_config("draw_mnist_small", None, bad)
    with pytest.raises(ValueError, match="unknown preset"):
        configs.load_config("nope")
    (tmp_path / "bad.toml").write_text("learning_rate = 1\n")
    with pytest.raises(ValueError, match="unknown training setting"):
        configs.load_config(None, tmp_path / "bad.toml")


def test_paper_presets_train_as_the_paper_did_unless_told_otherwise(tmp_path):
    from minidraw.configs import PRESETS
    papers = [name for name in PRESETS if name.endswith("_paper")]
    assert {"aligndraw_mnist_paper", "aligndraw_coco_paper", "sharpen_coco_paper"} <= set(papers)
    for name in papers:                       # RMSProp (0.9, 1e-6), batch 100, lr 1e-3, clip 10 (DESIGN §2)
        cfg = configs.load_config(name)
        if name.startswith(("sharpen", "lapgan")):   # the GANs: Adam at 2e-4 (the LAPGAN baseline's β₁ = 0.5)
            assert (cfg.optimizer, cfg.batch_size, cfg.lr) == ("adam", 100, 2e-4), name
            assert cfg.beta1 == (0.5 if name.startswith("lapgan") else 0.9), name
            continue
        assert (cfg.optimizer, cfg.batch_size, cfg.lr, cfg.clip) == ("rmsprop", 100, 1e-3, 10.0), name
    cfg = configs.load_config("aligndraw_mnist_paper")
    opt = optim.make_optimizer(cfg.optimizer, [torch.nn.Parameter(torch.zeros(1))], cfg.lr)
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-6
    opt = optim.make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 2e-4, beta1=0.5)
    assert opt.defaults["betas"] == (0.5, 0.999)
    with pytest.raises(ValueError, match="beta1"):
        optim.make_optimizer("adam", [torch.nn.Parameter(torch.zeros(1))], 2e-4, beta1=1.0)
    cfg = configs.load_config("aligndraw_coco_paper", None, ["optimizer=adam", "batch_size=64"])   # --set wins
    assert (cfg.optimizer, cfg.batch_size, cfg.lr) == ("adam", 64, 1e-3)
    f = tmp_path / "run.toml"
    f.write_text('preset = "aligndraw_mnist_paper"\nlr = 3e-4\n')
    cfg = configs.load_config(None, f)                                   # the TOML file wins over the preset
    assert (cfg.optimizer, cfg.batch_size, cfg.lr) == ("rmsprop", 100, 3e-4)
    small = configs.load_config("aligndraw_mnist_small")                 # the small presets: the trainer's defaults
    assert (small.optimizer, small.batch_size, small.lr) == ("adam", 64, 1e-3)


def test_test_sets_do_not_depend_on_the_training_seed():
    import numpy as np

    from minidraw.data.select import data_for
    from minidraw.evaluate import splits_for
    idx = np.arange(6)
    for name in ("aligndraw_shapes_small", "aligndraw_mnist_small"):
        runs = [configs.load_config(name, None, [f"seed={seed}"]) for seed in (0, 7)]
        model_cfg = preset(name)
        (tr0, te0, _, _), (tr7, te7, _, _) = (data_for(configs.data_of(c.preset), c.seed) for c in runs)
        assert not torch.equal(tr0.batch(idx).images, tr7.batch(idx).images)       # training data follows the seed
        torch.testing.assert_close(te0.batch(idx).images, te7.batch(idx).images)    # the test data does not
        s0, s7 = (splits_for(vars(c) | {"model": {}}, model_cfg) for c in runs)
        for split in ("test", "heldout"):
            torch.testing.assert_close(s0[split].batch(idx).images, s7[split].batch(idx).images)


def test_batches_are_a_function_of_the_step_and_split_over_ranks():
    images = torch.arange(100.0)[:, None, None, None].expand(100, 1, 2, 2)
    b = Batches(images, 10, seed=1)
    assert torch.equal(b(7)[0], Batches(images, 10, seed=1)(7)[0])       # any order, any process
    first_epoch = torch.cat([b(s)[0][:, 0, 0, 0] for s in range(1, 11)])
    assert sorted(first_epoch.tolist()) == list(range(100))                     # an epoch visits each once
    ranks = [Batches(images, 10, seed=1, rank=r, world=2)(7)[0] for r in range(2)]
    assert torch.equal(torch.cat(ranks), b(7)[0])                               # slices of the global batch
    with pytest.raises(ValueError, match="split evenly"):
        Batches(images, 10, world=3)


def test_finite_and_endless_data_sets_across_epochs():
    from minidraw.data.shapes import ShapesCaptions

    class Finite:  # like CocoCaptions: n examples, indices must stay below n
        def __len__(self):
            return 20

        def batch(self, idx):
            assert (idx < 20).all(), idx
            return ShapesCaptions("test").batch(idx)

    finite = Batches(Finite(), 5, seed=0)
    assert all(finite.indices(s).max() < 20 for s in range(1, 30))             # epochs 2..7 revisit 0..19
    endless = Batches(ShapesCaptions("train", length=20), 5, seed=0)
    assert endless.indices(5).min() >= 20                                         # epoch 2: new scenes
    images, captions, lengths = endless(5)
    assert images.shape == (5, 3, 32, 32) and len(captions) == len(lengths) == 5


def test_resume_continues_the_same_curve(tmp_path):
    _, straight = train.run(tiny("max_steps=6"), tmp_path / "a", progress=False)
    train.run(tiny("max_steps=3", "checkpoint_every=3"), tmp_path / "b", progress=False)
    _, resumed = train.run(tiny("max_steps=6"), tmp_path / "b", progress=False)
    losses = lambda log: [r["bound"] for r in log if "bound" in r]  # noqa: E731
    assert [r["step"] for r in resumed if "bound" in r] == [4, 5, 6]
    assert losses(resumed) == losses(straight)[3:]                              # bit for bit
    rows = rundir.read_metrics(tmp_path / "b")
    assert [r["step"] for r in rows if "bound" in r] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "b" / "metrics.png").exists()
    model, ckpt = checkpoint.load(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["step"] == 6 and ckpt["train"]["max_steps"] == 6 and model.cfg.T == 2


def test_ema_is_the_moving_average_of_the_trained_weights_and_leaves_training_alone(tmp_path):
    thetas = []                                                                 # θ_1, θ_2, θ_3 of a run without ema
    for k in (1, 2, 3):
        model, _ = train.run(tiny(f"max_steps={k}"), tmp_path / "plain", progress=False)
        thetas.append({n: t.clone() for n, t in model.state_dict().items()})
    averaged, _ = train.run(tiny("max_steps=3", "ema=0.5"), tmp_path / "ema", progress=False)
    saved, ckpt = checkpoint.load(tmp_path / "ema" / "checkpoint.pt")
    assert ckpt["ema_updates"] == 3
    for name, t in saved.state_dict().items():
        assert torch.equal(ckpt["live"][name], thetas[2][name])                 # training is unchanged
        naive = 0.25 * thetas[0][name] + 0.25 * thetas[1][name] + 0.5 * thetas[2][name]   # θ̄_3, d = ½
        assert torch.allclose(t, naive, atol=1e-6), name
        assert torch.equal(averaged.state_dict()[name], t)                      # run returns θ̄


def test_ema_resumes_exactly(tmp_path):
    _, straight = train.run(tiny("max_steps=6", "ema=0.9", "eval_every=3"), tmp_path / "a", progress=False)
    train.run(tiny("max_steps=3", "ema=0.9", "eval_every=3", "checkpoint_every=3"), tmp_path / "b", progress=False)
    _, resumed = train.run(tiny("max_steps=6", "ema=0.9", "eval_every=3"), tmp_path / "b", progress=False)
    assert [r["bound"] for r in resumed if "bound" in r] == [r["bound"] for r in straight if "bound" in r][3:]
    assert [r["test_bound"] for r in resumed if "test_bound" in r] == [r["test_bound"] for r in straight
                                                                        if "test_bound" in r][1:]   # θ̄ scored
    (a, ca), (b, cb) = (checkpoint.load(tmp_path / d / "checkpoint.pt") for d in "ab")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert all(torch.equal(ca["live"][k], cb["live"][k]) for k in ca["live"])
    with pytest.raises(ValueError, match="ema"):
        train.run(tiny("max_steps=1", "ema=1.5"), tmp_path / "c", progress=False)


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
    cfg = tiny("max_steps=10")
    model = build(preset(cfg.preset, **cfg.model))

    class Poisoned(torch.nn.Module):  # turns the bound into NaN from step 5 on
        def __init__(self):
            super().__init__()
            self.module, self.calls, self.cfg = model, 0, model.cfg  # wrapped like DDP wraps

        def forward(self, x):
            self.calls += 1
            out = self.module(x)
            if self.calls >= 5:
                out.nll = out.nll * float("nan")
            return out

    images = torch.rand(64, 1, 28, 28).round()
    with pytest.raises(train.TrainingDiverged, match=r"at step 5.*last good checkpoint"):
        train.fit(Poisoned(), images, cfg, progress=False, out=tmp_path)
    _, ckpt = checkpoint.load(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 4


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_and_malicious_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    checkpoint.save(good, Draw(preset("draw_mnist_small", T=2)))
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    for name in ("cut.pt", "junk.pt"):
        with pytest.raises(RuntimeError, match="not a readable minidraw checkpoint") as e:
            checkpoint.load(tmp_path / name)
        assert e.value.__cause__ is None and e.value.__suppress_context__   # one clear message

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"kind": "draw", "config": Evil()}, f)
    torch.save({"kind": "draw", "config": Evil()}, tmp_path / "evil2.pt")
    with pytest.raises(RuntimeError, match="not a readable"):
        checkpoint.load(evil)                                       # a bare pickle: not a checkpoint file at all
    with pytest.raises(RuntimeError, match=r"holds Python objects that are not weights \(posix.system\), "
                                           "so it will not be loaded") as e:
        checkpoint.load(tmp_path / "evil2.pt")
    assert "weights_only" not in str(e.value)                  # never the advice to unpickle it anyway
    assert not marker.exists()
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"empty.pt is empty \(0 bytes\).*train again"):
        checkpoint.load(tmp_path / "empty.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="lacks the keys"):
        checkpoint.load(tmp_path / "other.pt")


def _cli(out, *more):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "minidraw", "train", "--preset", "draw_mnist_small", "--quiet",
                             "--out", str(out), "--set", *TINY, "checkpoint_every=1", *more],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(out, step, proc, timeout=90, checkpoint=True):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = rundir.read_metrics(out)
        if rows and rows[-1]["step"] >= step and (not checkpoint or (out / "checkpoint.pt").exists()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not get going in time")


@pytest.fixture
def cli_run():
    """Start ``minidraw train`` in a subprocess; whatever happens, it does not outlive the test."""
    procs = []

    def start(out, *more):
        procs.append(_cli(out, *more))
        return procs[-1]
    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_sigkill_mid_run_then_resume(tmp_path, cli_run):
    out = tmp_path / "run"
    proc = cli_run(out, "max_steps=100000")
    _wait_for_step(out, 5, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, ckpt = checkpoint.load(out / "checkpoint.pt")              # intact, never half-written
    killed_at = ckpt["step"]
    model, log = train.run(tiny(f"max_steps={killed_at + 2}", "checkpoint_every=1"), out, progress=False)
    assert [r["step"] for r in log if "bound" in r] == [killed_at + 1, killed_at + 2]
    assert not (out / "checkpoint.pt.tmp").exists()
    steps = [r["step"] for r in rundir.read_metrics(out) if "bound" in r]
    assert steps == list(range(1, killed_at + 3))             # no duplicated or missing steps


def test_ctrl_c_checkpoints_and_exits_cleanly(tmp_path, cli_run):
    out = tmp_path / "run"
    proc = cli_run(out, "max_steps=100000", "checkpoint_every=100000")
    _wait_for_step(out, 2, proc, checkpoint=False)
    assert not (out / "checkpoint.pt").exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    _, ckpt = checkpoint.load(out / "checkpoint.pt")
    assert ckpt["step"] == max(r["step"] for r in rundir.read_metrics(out))


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    from minidraw.cli import main

    def fails(argv, *words):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("minidraw train: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert all(w in err for w in words), err
    fails(["train", "--preset", "nope", "--out", str(tmp_path)], "unknown preset")
    fails(["train", "--preset", "aligndraw_mnist_small", "--set", "model.z_size=-3", "--out", str(tmp_path)],
          "z_size must be a whole number of at least 1, got -3", "--set model.")
    fails(["train", "--preset", "draw_mnist_small", "--set", "model.T=abc", "--out", str(tmp_path)],
          "--set model.T=abc: expected a whole number")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")              # resuming an empty checkpoint
    fails(["train", "--out", str(tmp_path / "run")], "checkpoint.pt is empty")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "torchrun" in capsys.readouterr().out


def _ddp_worker(rank, world, init, x, noise, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = Draw(preset("draw_mnist_small", T=3, enc_size=16, dec_size=16, z_size=4))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    per = len(x) // world
    part = slice(rank * per, (rank + 1) * per)
    train.train_step(ddp, opt, (x[part],), configs.TrainConfig(), step=1, noise=noise[:, part])
    if rank == 0:
        torch.save(model.state_dict(), out)
    dist.destroy_process_group()


def test_two_processes_equal_one_on_the_global_batch(tmp_path):
    torch.manual_seed(1)
    x = torch.rand(8, 1, 28, 28).round()
    noise = torch.randn(3, 8, 4)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, f"file://{tmp_path / 'init'}", x, noise, tmp_path / "ddp.pt"),
                                nprocs=2, join=True)
    torch.manual_seed(0)
    single = Draw(preset("draw_mnist_small", T=3, enc_size=16, dec_size=16, z_size=4))
    before = {k: v.clone() for k, v in single.state_dict().items()}
    opt = torch.optim.SGD(single.parameters(), lr=0.1)
    train.train_step(single, opt, (x,), configs.TrainConfig(), step=1, noise=noise)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for k, v in single.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(before[k], v) for k, v in single.state_dict().items())   # the step did something


def _switch_worker(rank, world, init, out):
    """One of two gloo processes training the what/where objective with ``terms_from=2`` under DDP, as ``run`` wraps
    it: the adversary sits unused for two steps, then joins."""
    import torch.distributed as dist
    from minidraw.compose import CompositionObjective
    from minidraw.data.mnist_captions import VOCAB
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = build(preset("compose_mnist_small", T=2, enc_size=8, dec_size=8, z_size=4, read_N=2, write_N=2))
    cfg = tiny("max_steps=4", "what_adversary=3", "where_kl=2", "terms_from=2", "batch_size=2")
    net = train.data_parallel(CompositionObjective(model, cfg.what_adversary, cfg.where_kl), cfg)
    ids, lengths = VOCAB.encode_batch(["the digit 3 is on the left of the digit 7 .",
                                       "the digit 1 is at the top of the digit 0 ."])
    batch = (torch.rand(2, 1, 60, 60).round(), ids, lengths)
    log = train.fit(net, lambda step: batch, cfg, progress=False, rank=rank)
    if rank == 0:
        torch.save({"adversary": ["adversary_nats" in r for r in log if "bound" in r]}, out)
    dist.destroy_process_group()


def test_the_terms_switch_on_mid_run_across_processes(tmp_path):
    torch.multiprocessing.spawn(_switch_worker, args=(2, f"file://{tmp_path / 'init'}", tmp_path / "log.pt"),
                                nprocs=2, join=True)
    assert torch.load(tmp_path / "log.pt")["adversary"] == [False, False, True, True]


def test_fit_leaves_the_callers_random_state_alone_and_still_replays_exactly():
    cfg = tiny("max_steps=3")
    images = torch.rand(64, 1, 28, 28).round()
    logs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Draw(preset("draw_mnist_small", T=2, enc_size=16, dec_size=16, z_size=4))
        torch.manual_seed(77)
        expected = torch.rand(2)
        torch.manual_seed(77)
        logs.append([r["bound"] for r in train.fit(model, images, cfg, progress=False)])
        assert torch.equal(torch.rand(2), expected)                  # every step reseeded a fork, not the caller's RNG
    assert logs[0] == logs[1] and len(logs[0]) == 3


def _stopping_worker(rank, world, init, out, signal_rank, limit_rank):
    """One of two gloo processes training with ``fit``: rank ``limit_rank`` alone has a time limit;
    rank ``signal_rank`` gets a SIGTERM from the test. Writes its last step and each checkpoint write."""
    import datetime
    import json

    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=30))      # a rank left waiting fails, never hangs
    saves = []
    real_save = train.save
    train.save = lambda *a, **k: (saves.append(1), real_save(*a, **k))
    torch.manual_seed(0)
    model = Draw(preset("draw_mnist_small", T=2, enc_size=8, dec_size=8, z_size=2, read_N=2, write_N=2))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    x = torch.rand(64, 1, 28, 28).round()
    cfg = tiny("max_steps=100000", "checkpoint_every=100000", "checkpoint_minutes=1000", "batch_size=8",
               f"max_minutes={0.02 if rank == limit_rank else 0}")
    batches = Batches(x, cfg.batch_size, cfg.seed, rank, world)
    (out / f"ready{rank}").write_text(str(os.getpid()))
    log = train.fit(ddp, batches, cfg, progress=False, out=out if rank == 0 else None, rank=rank)
    (out / f"rank{rank}.json").write_text(json.dumps({"step": log[-1]["step"], "saves": len(saves)}))
    dist.destroy_process_group()


def _run_two_ranks(tmp_path, signal_rank=None, limit_rank=None):
    import json
    ctx = torch.multiprocessing.start_processes(
        _stopping_worker, args=(2, f"file://{tmp_path / 'init'}", tmp_path, signal_rank, limit_rank),
        nprocs=2, join=False, start_method="spawn")
    try:
        if signal_rank is not None:
            deadline = time.time() + 60
            while not (len([r for r in rundir.read_metrics(tmp_path) if "bound" in r]) >= 3
                       and (tmp_path / f"ready{signal_rank}").exists()):
                assert time.time() < deadline, "the two processes did not get going"
                assert all(p.is_alive() for p in ctx.processes), "a process died early"
                time.sleep(0.05)
            os.kill(int((tmp_path / f"ready{signal_rank}").read_text()), signal.SIGTERM)
        deadline = time.time() + 60
        while not ctx.join(timeout=1):
            assert time.time() < deadline, "the processes did not stop together (one waits in an all-reduce)"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("how", ["sigterm_to_rank_1", "time_limit_on_rank_1"])
def test_two_processes_stop_at_the_same_step(tmp_path, how):
    results = _run_two_ranks(tmp_path, **({"signal_rank": 1} if how.startswith("sigterm") else {"limit_rank": 1}))
    assert results[0]["step"] == results[1]["step"] >= 1
    assert (results[0]["saves"], results[1]["saves"]) == (1, 0)               # rank 0 checkpoints, once
    _, ckpt = checkpoint.load(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == results[0]["step"]


def test_learning_rate_warms_up_then_follows_the_half_cosine():
    import math
    cfg = tiny("lr=0.01", "lr_schedule=cosine", "lr_min=0.1", "warmup_steps=10", "max_steps=101")
    lr = [optim.learning_rate(cfg, k) for k in range(1, 102)]
    assert lr[0] == pytest.approx(0.01 * 1 / 10 * (0.001 + 0.009 * 1.0) / 0.01)       # warm-up · cosine top
    assert lr[4] == pytest.approx(0.5 * (0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * 4 / 100))))
    assert lr[50] == pytest.approx(0.001 + 0.009 * 0.5)                                # half way: the middle
    assert lr[-1] == pytest.approx(0.001)                                              # the last step: lr · lr_min
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))                               # falls after warm-up
    flat = tiny("lr=0.01", "warmup_steps=4")
    assert [optim.learning_rate(flat, k) for k in (1, 2, 4, 50)] == pytest.approx([0.0025, 0.005, 0.01, 0.01])
    with pytest.raises(ValueError, match="lr_schedule"):
        optim.learning_rate(tiny("lr_schedule=linear"), 1)


def test_the_optimiser_uses_the_scheduled_rate(tmp_path):
    cfg = tiny("lr=0.01", "lr_schedule=cosine", "lr_min=0.1", "max_steps=3")
    model = build(preset(cfg.preset, **cfg.model))
    opt = optim.make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    images = (torch.rand(32, 1, 28, 28) < 0.3).float()
    train.fit(model, images, cfg, progress=False, opt=opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)                           # the last step's rate


def test_a_run_starts_from_given_weights_and_refuses_another_model(tmp_path):
    first, _ = train.run(tiny("max_steps=2"), tmp_path / "a", progress=False)
    model, _ = train.run(tiny("max_steps=1", "lr=1e-9", f"init={tmp_path / 'a' / 'checkpoint.pt'}"),
                         tmp_path / "b", progress=False)
    for p, q in zip(first.parameters(), model.parameters()):                        # lr ~ 0: still the init
        assert torch.allclose(p, q, atol=1e-6)
    with pytest.raises(ValueError, match="different model"):
        train.run(tiny("max_steps=1", "model.z_size=5", f"init={tmp_path / 'a' / 'checkpoint.pt'}"),
                  tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match="neither a checkpoint file"):
        train.run(tiny("max_steps=1", "init=no-such-model"), tmp_path / "d", progress=False)


def test_caption_fidelity_is_logged_at_each_evaluation(tmp_path):
    cfg = configs.load_config("aligndraw_mnist_small", None, [
        "model.T=2", "model.enc_size=8", "model.dec_size=8", "model.z_size=2", "batch_size=8", "max_steps=2",
        "eval_every=1", "eval_examples=8", "eval_fidelity=8", "classifiers=" + str(REPO_CLASSIFIERS)])
    train.run(cfg, tmp_path, progress=False)
    rows = [r for r in rundir.read_metrics(tmp_path) if "fidelity_seen" in r]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["fidelity_seen"] <= 100 and 0 <= r["fidelity_heldout"] <= 100
        assert 0 <= r["fidelity_heldout_val"] <= 100       # the validation compositions, withheld by default
        assert set(r["fidelity_seen_by_template"]) >= {"left of", "top right corner"} and r["seconds"] > 0
    with pytest.raises(ValueError, match="heldout_val=True"):     # a run's data never changes mid-run
        train.run(replace(cfg, max_steps=3, heldout_val=False), tmp_path, progress=False)
    with pytest.raises(ValueError, match="no checker"):
        evaluate.fidelity_evaluation(cfg, torch.zeros(4, 1, 28, 28))


REPO_CLASSIFIERS = Path(__file__).resolve().parents[1] / "book" / "checkpoints" / "classifiers"


def test_every_shipped_recipe_loads_by_name_and_names_a_pretrained_model(tmp_path):
    from minidraw import pretrained
    assert set(configs.recipes()) <= set(pretrained.MODELS) and "aligndraw-mnist" in configs.recipes()
    for name in configs.recipes():
        cfg = configs.load_config(None, name, ["batch_size=8"])
        assert cfg == configs.load_config(None, str(configs.recipe(name)), ["batch_size=8"])
        assert cfg.max_steps > 1000 and cfg.batch_size == 8
        if cfg.preset.startswith("sharpen"):         # a GAN: a constant rate, Adam at 2e-4
            assert (cfg.lr_schedule, cfg.optimizer, cfg.lr) == ("constant", "adam", 2e-4), name
        else:                                        # the drawing models: a cosine-decayed rate
            assert cfg.lr_schedule == "cosine", name
        preset(cfg.preset, **cfg.model)                                             # a valid model
    with pytest.raises(ValueError, match="no recipe named 'nope'.*aligndraw-mnist"):
        configs.load_config(None, "nope")
    with pytest.raises(ValueError, match="no configuration file"):
        configs.load_config(None, str(tmp_path / "missing.toml"))


def test_bf16_autocast_scores_the_bound_in_float32_and_agrees_with_float32():
    """Under bf16 autocast (``cpu_bf16``/``bf16``) the networks' products run in bf16 but the bound's terms stay
    float32, the bound is within 0.5 % of the float32 one for the same weights and noise, and the gradient
    points the same way (cosine > 0.99). Autocast runs on any CPU (emulated where bf16 is not native)."""
    torch.manual_seed(0)
    model = build(preset("draw_mnist_small"))
    x = torch.rand(8, 1, 28, 28).bernoulli()
    noise = torch.randn(model.cfg.T, 8, model.cfg.z_size)
    grads, bounds = [], []
    for bf16 in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x, noise=noise)
        assert out.nll.dtype == out.kl.dtype == out.canvas.dtype == torch.float32
        out.bound.mean().backward()
        bounds.append(out.bound.mean().item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert abs(bounds[1] - bounds[0]) < 5e-3 * abs(bounds[0]), bounds
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_cpu_bf16_is_used_only_where_asked_and_native(monkeypatch):
    model = build(preset("draw_mnist_small"))
    monkeypatch.setattr(train, "bf16_native", lambda where: True)
    assert train._use_bf16(model, tiny("cpu_bf16=true")) and not train._use_bf16(model, tiny())
    monkeypatch.setattr(train, "bf16_native", lambda where: False)
    assert not train._use_bf16(model, tiny("cpu_bf16=true"))                  # emulated bf16 is slower: never
    from minidraw.runtime import bf16_native
    assert isinstance(bf16_native(torch.device("cpu")), bool) and bf16_native(torch.device("meta")) is False


def test_training_under_cpu_bf16_lowers_the_bound_as_float32_does(tmp_path, monkeypatch):
    """40 steps of the same run in float32 and under bf16 autocast: both lower the bound, to within 2 % of
    each other."""
    monkeypatch.setattr(train, "bf16_native", lambda where: True)             # autocast even where emulated
    ends = []
    for bf16 in ("false", "true"):
        _, log = train.run(tiny("max_steps=40", f"cpu_bf16={bf16}", "lr=3e-3"), tmp_path / bf16, progress=False)
        bounds = [r["bound"] for r in log if "bound" in r]
        start, end = sum(bounds[:5]) / 5, sum(bounds[-5:]) / 5
        assert end < 0.95 * start, (bf16, bounds)
        ends.append(end)
    assert abs(ends[1] - ends[0]) < 0.02 * ends[0], ends
