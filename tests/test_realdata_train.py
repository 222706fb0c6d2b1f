"""Training runs: CPU smoke runs of both preset families, resume, comparison table, DDP,
the optimizer registry, SNGD/SPS variants, stale temporaries, the command line's structure."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from realdata_helpers import TINY, small_mnist_bundle
from realdata.models import ViT
from realdata import registry
from realdata.__main__ import build_parser, main
from realdata.registry import OptimizerSpec, register_optimizer, run_label
from realdata.train import (EVAL_COLUMNS, METRIC_COLUMNS, PRESETS, SUMMARY_COLUMNS, RunConfig,
                            compare, read_metrics, train)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_mnist():
    """200 training / 100 held-out images of the embedded MNIST: 4 steps per epoch at batch 50."""
    return small_mnist_bundle(200, 100)


def _header(path):
    with open(path) as fh:
        return next(csv.reader(fh))


def _vit_run(out, small_mnist, optimizer, steps, **kw):
    return train("mnist-vit", optimizer, out, steps=steps, seed=kw.pop("seed", 0), device="cpu",
                 data=small_mnist, progress=kw.pop("progress", False), batch_size=50,
                 model_overrides=kw.pop("model_overrides", TINY), **kw)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "sngd", "sps"])
def test_vit_smoke_run_outputs_are_complete_and_consistent(tmp_path, small_mnist, optimizer):
    res = _vit_run(tmp_path, small_mnist, optimizer, steps=6, checkpoint_every=4)
    assert _header(tmp_path / "metrics.csv") == list(METRIC_COLUMNS)
    assert _header(tmp_path / "eval.csv") == list(EVAL_COLUMNS)
    m = read_metrics(tmp_path)
    np.testing.assert_array_equal(m["step"], np.arange(1, 7))
    np.testing.assert_allclose(m["epoch"], np.arange(1, 7) / 4, rtol=1e-12)
    for col in METRIC_COLUMNS:
        assert np.all(np.isfinite(m[col])), col
    # Cross-entropy of 10 classes starts near log 10; attention rows are distributions
    # over 50 tokens: entropy in [0, log 50], largest weight in [1/50, 1].
    assert abs(m["loss"][0] - math.log(10)) < 0.5
    assert np.all((m["attn_entropy"] >= 0) & (m["attn_entropy"] <= math.log(50) + 1e-6))
    assert np.all((m["attn_max"] >= 1 / 50 - 1e-7) & (m["attn_max"] <= 1 + 1e-7))
    assert np.all((m["acc"] >= 0) & (m["acc"] <= 1))
    spec = PRESETS["mnist-vit"]
    if optimizer == "sngd":
        expected = np.minimum(spec.lr["sngd"] / m["grad_norm"], spec.eta_max)
    elif optimizer == "sps":
        expected = np.minimum(m["loss"] / (spec.sps_c * m["grad_norm"] ** 2), spec.eta_max)
    else:
        expected = np.full(6, spec.lr[optimizer])
    np.testing.assert_allclose(m["step_size"], expected, rtol=1e-5)

    # Held-out evaluation after each epoch (step 4) and at the end (step 6).
    e = read_metrics(tmp_path, "eval")
    np.testing.assert_array_equal(e["step"], [4, 6])
    np.testing.assert_allclose(e["epoch"], [1.0, 1.5])

    # The checkpoint holds the final model: reloading it reproduces the logged held-out loss.
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and set(ckpt) >= {"model", "optimizer", "rng"}
    model = ViT(**TINY)
    model.load_state_dict(ckpt["model"])
    model.eval()
    x = small_mnist.heldout.inputs.float() / 255.0
    tr = small_mnist.train.inputs.double() / 255.0
    x = ((x - tr.mean()) / tr.std(unbiased=False)).float()
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(x), small_mnist.heldout.labels)
    np.testing.assert_allclose(float(loss), e["heldout_loss"][-1], rtol=1e-4)

    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["dataset"] == "mnist-test-split" and "MNIST" in cfg["stand_in_for"]
    assert cfg["optimizer"] == optimizer and cfg["batch_size"] == 50
    assert res.steps == 6 and res.diverged_at is None
    np.testing.assert_allclose(res.final_train_loss, m["loss"][-1])  # last 10 % of 6 steps = 1


@pytest.mark.slow
def test_bert_smoke_run_on_bbc(tmp_path):
    res = train("bbc-bert", "sps", tmp_path, steps=3, device="cpu", progress=False, batch_size=8,
                max_seq_len=24, eval_max=16, checkpoint_every=2)
    m = read_metrics(tmp_path)
    np.testing.assert_array_equal(m["step"], [1, 2, 3])
    for col in METRIC_COLUMNS:
        assert np.all(np.isfinite(m[col])), col
    assert abs(m["loss"][0] - math.log(5)) < 0.5  # a new 5-class head starts near uniform
    # The [CLS] row spreads over at most 24 tokens.
    assert np.all((m["attn_entropy"] > 0) & (m["attn_entropy"] <= math.log(24) + 1e-6))
    np.testing.assert_allclose(
        m["step_size"], np.minimum(m["loss"] / (0.5 * m["grad_norm"] ** 2), 0.1), rtol=1e-5)
    e = read_metrics(tmp_path, "eval")
    np.testing.assert_array_equal(e["step"], [3])
    assert np.isfinite(e["heldout_loss"]).all()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["dataset"] == "bbc-news" and cfg["stand_in_for"] == "MNLI / Civil Comments"
    assert cfg["model_config"]["newly_initialized"] == ["classifier.bias", "classifier.weight"]
    assert cfg["heldout_examples"] == 16 and cfg["max_seq_len"] == 24
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 3 and any(k.endswith("classifier.weight") for k in ckpt["model"])
    assert res.steps == 3


class _Crash(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["adam", "sps"])
def test_resume_after_crash_gives_identical_records(tmp_path, small_mnist, optimizer):
    # Dropout makes the run depend on the RNG state, Adam on the optimizer state; 10 steps at
    # 4 steps per epoch cross two epoch boundaries (new data order) and one checkpoint reload.
    kw = dict(checkpoint_every=3, model_overrides={**TINY, "dropout": 0.2})
    _vit_run(tmp_path / "whole", small_mnist, optimizer, steps=10, **kw)

    def crash_at_7(row):
        if row["step"] == 7:
            raise _Crash

    with pytest.raises(_Crash):
        _vit_run(tmp_path / "cut", small_mnist, optimizer, steps=10, callback=crash_at_7, **kw)
    assert read_metrics(tmp_path / "cut")["step"][-1] == 7  # rows after the checkpoint at 6
    with pytest.raises(ValueError, match="already holds a run"):
        _vit_run(tmp_path / "cut", small_mnist, optimizer, steps=10, **kw)
    _vit_run(tmp_path / "cut", small_mnist, optimizer, steps=10, resume=True, **kw)

    for which in ("metrics", "eval"):
        a, b = read_metrics(tmp_path / "whole", which), read_metrics(tmp_path / "cut", which)
        np.testing.assert_array_equal(a["step"], b["step"])
        for col in a:
            np.testing.assert_allclose(b[col], a[col], rtol=1e-12, atol=0, err_msg=f"{which}.{col}")
    np.testing.assert_array_equal(read_metrics(tmp_path / "cut")["step"], np.arange(1, 11))
    w = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    c = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["model"]
    for k in w:
        torch.testing.assert_close(c[k], w[k], rtol=0, atol=0)


def test_resume_refuses_a_different_run(tmp_path, small_mnist):
    _vit_run(tmp_path, small_mnist, "sgd", steps=2)
    with pytest.raises(ValueError, match="different run"):
        _vit_run(tmp_path, small_mnist, "sgd", steps=4, seed=1, resume=True)


def test_compare_writes_one_summary_row_per_run(tmp_path, small_mnist):
    results = compare("mnist-vit", tmp_path, optimizers=("sgd", "sps"), steps=3, seeds=(0, 1),
                      device="cpu", data=small_mnist, progress=False, batch_size=50,
                      model_overrides=TINY)
    with open(tmp_path / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    assert [(r["optimizer"], r["seed"]) for r in rows] == [("sgd", "0"), ("sps", "0"),
                                                           ("sgd", "1"), ("sps", "1")]
    first = {}
    for r, res in zip(rows, results):
        m = read_metrics(tmp_path / r["run_dir"])
        assert r["run_dir"] == f"{r['optimizer']}-seed{r['seed']}"
        np.testing.assert_allclose(float(r["final_train_loss"]), m["loss"][-1], rtol=1e-12)
        # the table reports the runs' own results, not a recomputation
        np.testing.assert_allclose([float(r["heldout_acc"]), float(r["mean_step_time_s"])],
                                   [res.heldout_acc, res.mean_step_time_s], rtol=1e-12)
        assert res.mean_step_time_s > 0
        first.setdefault(r["seed"], []).append(m["loss"][0])
        assert res.optimizer == r["optimizer"]
    # Runs of one seed start from the same model on the same batch: equal first losses;
    # different seeds do not.
    for losses in first.values():
        assert losses[0] == losses[1]
    assert first["0"][0] != first["1"][0]


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_a_single_process(tmp_path):
    args = ["train", "--preset", "mnist-vit", "--optimizer", "sps", "--steps", "3",
            "--batch-size", "20", "--embed-dim", "16", "--depth", "1", "--eval-max", "40",
            "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "PYTHONPATH": str(REPO)}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "realdata", *args, "-o", str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "realdata", *args, "-o", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert single.returncode == 0, single.stderr[-3000:]

    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["ddp_param_max_abs_diff"] == 0.0  # SPS used the same global loss on both ranks
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["batch_size"] == 20
    a, b = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "one")
    np.testing.assert_array_equal(a["step"], [1, 2, 3])  # rank 0 alone wrote: no duplicate rows
    # Two halves of each batch with averaged gradients = the whole batch, up to float32 sums.
    for col in ("loss", "acc", "step_size", "grad_norm", "attn_entropy", "attn_max"):
        np.testing.assert_allclose(a[col], b[col], rtol=2e-4, atol=1e-6, err_msg=col)
    ea, eb = read_metrics(tmp_path / "ddp", "eval"), read_metrics(tmp_path / "one", "eval")
    np.testing.assert_allclose(ea["heldout_loss"], eb["heldout_loss"], rtol=2e-4)


class SignSGD(torch.optim.Optimizer):
    """A toy optimizer defined in the test: theta <- theta - lr * sign(g)."""

    def __init__(self, params, lr):
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])


@pytest.fixture
def sign_sgd(monkeypatch):
    """Register the toy optimizer for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "OPTIMIZER_REGISTRY", dict(registry.OPTIMIZER_REGISTRY))
    return register_optimizer(OptimizerSpec(
        "signsgd", lambda params, hp: SignSGD(params, lr=hp["lr"]), hyper=("lr",),
        label="signSGD", color="tab:red", default_lr=0.01))


def test_a_registered_toy_optimizer_trains_with_nothing_else_changed(tmp_path, small_mnist,
                                                                     sign_sgd):
    captured = {}
    original = SignSGD.step

    def spy(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        captured["before"] = [p.detach().clone() for p in params]
        captured["grads"] = [p.grad.detach().clone() for p in params]
        original(self, closure)
        captured["after"] = [p.detach().clone() for p in params]

    SignSGD.step = spy
    try:
        res = _vit_run(tmp_path, small_mnist, "signsgd", steps=3)
    finally:
        SignSGD.step = original
    m = read_metrics(tmp_path)
    np.testing.assert_array_equal(m["step"], [1, 2, 3])
    np.testing.assert_allclose(m["step_size"], 0.01)  # the spec's default lr, recorded
    for before, grad, after in zip(captured["before"], captured["grads"], captured["after"]):
        torch.testing.assert_close(after, before - 0.01 * torch.sign(grad), rtol=0, atol=1e-7)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["optimizer"], cfg["lr"], cfg["eta_max"], cfg["sps_c"]) == ("signsgd", 0.01, None, None)
    assert run_label(cfg) == "signSGD" and res.steps == 3


def test_an_optimizer_without_learning_rate_is_refused_before_the_folder(tmp_path, sign_sgd):
    register_optimizer(OptimizerSpec("nolr", sign_sgd.factory, hyper=("lr",)))
    with pytest.raises(ValueError, match="'nolr' has no learning rate in preset mnist-vit"):
        train("mnist-vit", "nolr", tmp_path / "run", steps=1)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cap", ["step_size", "none", "step_length"])
def test_sngd_cap_is_applied_recorded_and_labelled(tmp_path, small_mnist, cap):
    # lr above eta_max so that every cap gives a different step size.
    _vit_run(tmp_path, small_mnist, "sngd", steps=3, lr=0.05, sngd_cap=cap,
             **({} if cap == "none" else {"eta_max": 0.02}))
    m = read_metrics(tmp_path)
    g = m["grad_norm"]
    expected = {"step_size": np.minimum(0.05 / g, 0.02), "none": 0.05 / g,
                "step_length": 0.02 / g}[cap]
    np.testing.assert_allclose(m["step_size"], expected, rtol=1e-5)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["sngd_cap"] == cap and cfg["eta_max"] == (None if cap == "none" else 0.02)
    assert run_label(cfg) == {"step_size": "SNGD (step-size cap)", "none": "SNGD (no cap)",
                              "step_length": "SNGD (step-length cap)"}[cap]


def test_sps_c_is_applied_recorded_and_labelled(tmp_path, small_mnist):
    _vit_run(tmp_path, small_mnist, "sps", steps=3, sps_c=0.2, eta_max=1e6)
    m = read_metrics(tmp_path)
    np.testing.assert_allclose(m["step_size"], m["loss"] / (0.2 * m["grad_norm"] ** 2), rtol=1e-5)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["sps_c"], cfg["sngd_cap"], cfg["lr"]) == (0.2, None, None)
    assert run_label(cfg) == "SPS (c=0.2)"


def test_run_config_object_gives_the_same_run_as_keywords(tmp_path, small_mnist):
    cfg = RunConfig("mnist-vit", "sgd", tmp_path / "a", steps=2, device="cpu", data=small_mnist,
                    progress=False, batch_size=50, model_overrides=TINY)
    train(cfg)
    _vit_run(tmp_path / "b", small_mnist, "sgd", steps=2)
    np.testing.assert_array_equal(read_metrics(tmp_path / "a")["loss"],
                                  read_metrics(tmp_path / "b")["loss"])
    with pytest.raises(TypeError, match="takes no further settings"):
        train(cfg, steps=3)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resume_removes_the_temporary_of_a_killed_checkpoint_write(tmp_path, small_mnist):
    _vit_run(tmp_path, small_mnist, "sgd", steps=2)
    # What a SIGKILL during torch.save leaves: a temporary named after the dead writer.
    stale = tmp_path / f".checkpoint.pt.tmp-{_dead_pid()}-0badf00d.pt"
    stale.write_bytes(b"half a checkpoint")
    live = tmp_path / f".checkpoint.pt.tmp-{os.getpid()}-0000beef.pt"  # a live writer's: kept
    live.write_bytes(b"being written")
    _vit_run(tmp_path, small_mnist, "sgd", steps=4, resume=True)
    assert not stale.exists() and live.exists()
    np.testing.assert_array_equal(read_metrics(tmp_path)["step"], [1, 2, 3, 4])


def test_progress_bar_names_preset_optimizer_and_seed(tmp_path, small_mnist, capsys):
    _vit_run(tmp_path, small_mnist, "sps", steps=1, seed=3, progress=True)
    assert "mnist-vit/sps seed 3" in capsys.readouterr().err


def test_cli_help_is_plain_text_with_defaults(capsys):
    parser, sub = build_parser()
    texts = [parser.format_help()] + [p.format_help() for p in sub.choices.values()]
    for text in texts:
        assert "``" not in text and ":func:" not in text and ":class:" not in text
    for name in ("train", "compare"):
        p = sub.choices[name]
        assert p.description  # every subcommand says what it does
        formatter = p._get_formatter()
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                shown = formatter._get_help_string(action)
                assert shown, action.dest
                # A default is shown, or said in words, or the option is a flag (off).
                assert ("default" in shown or action.default is False or action.required), \
                    action.dest
    assert "(default: step_size)" in sub.choices["train"].format_help()


def test_a_subcommand_is_added_with_one_call_and_dispatched_by_func(capsys):
    parser, sub = build_parser()

    def add_parser(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--name", default="world")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    add_parser(sub)
    args = parser.parse_args(["hello", "--name", "sweep"])
    assert args.func(args) == 0 and capsys.readouterr().out == "hello sweep\n"


def test_cli_presets_prints_json(capsys):
    assert main(["presets"]) == 0
    presets = json.loads(capsys.readouterr().out)
    assert presets["mnist-vit"]["lr"] == {"sgd": 0.1, "sngd": 0.001, "adam": 0.001}
    assert presets["mnli-bert"]["download"] == "mnli"
