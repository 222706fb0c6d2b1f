"""Hostile inputs to realdata and its command line: a clear typed error, and no run folder left.

Every case asserts the error type and message; the command-line cases also assert exit status
2, a single ``error:`` line on stderr and that the output folder was not created.
"""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from realdata.__main__ import main
from realdata.config import RunConfig
from realdata.data import load_cifar10, load_civil_comments, load_mnist, load_mnli, read_idx
from realdata.train import compare, load_preset_data, read_metrics, train

REPO = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("settings, error, match", [
    (dict(preset="mnist"), ValueError, "unknown preset 'mnist'; choose one of"),
    (dict(preset=None), TypeError, "preset must be a string, not NoneType"),
    (dict(optimizer="lbfgs"), ValueError, "unknown optimizer 'lbfgs'; choose one of"),
    (dict(optimizer=["sgd"]), TypeError, "optimizer must be a string, not list"),
    (dict(steps=0), ValueError, "steps must be >= 1, got 0"),
    (dict(steps=-5), ValueError, "steps must be >= 1, got -5"),
    (dict(steps=2.5), TypeError, r"steps must be an integer, not float \(2.5\)"),
    (dict(steps=True), TypeError, "steps must be an integer, not bool"),
    (dict(steps="10"), TypeError, "steps must be an integer, not str"),
    (dict(epochs=0), ValueError, "epochs must be a positive finite number, got 0.0"),
    (dict(epochs=NAN), ValueError, "epochs must be a positive finite number, got nan"),
    (dict(steps=5, epochs=1), ValueError, "give steps or epochs, not both"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 4294967295\], got -1"),
    (dict(seed=1.0), TypeError, "seed must be an integer, not float"),
    (dict(device="tpu"), ValueError, "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (dict(device=0), TypeError, "device must be a string, not int"),
    (dict(lr=True), TypeError, r"lr must be a real number, not bool \(True\)"),
    (dict(lr="0.1"), TypeError, r"lr must be a real number, not str \('0.1'\)"),
    (dict(lr=NAN), ValueError, "lr must be a positive finite number, got nan"),
    (dict(lr=-0.1), ValueError, "lr must be a positive finite number, got -0.1"),
    (dict(lr=INF), ValueError, "lr must be a positive finite number, got inf"),
    (dict(lr=1j), TypeError, "lr must be a real number, not complex"),
    (dict(eta_max=0.0), ValueError, "eta_max must be a positive finite number, got 0.0"),
    (dict(eta_max=-1e200), ValueError, "eta_max must be a positive finite number, got -1e"),
    (dict(sps_c=0), ValueError, "sps_c must be a positive finite number, got 0.0"),
    (dict(sngd_cap="length"), ValueError, "unknown sngd_cap 'length'; choose one of"),
    (dict(sngd_cap=3), TypeError, "sngd_cap must be a string, not int"),
    (dict(optimizer="sngd", sngd_cap="none", eta_max=0.1), ValueError,
     "sngd_cap='none' takes no eta_max"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
    (dict(batch_size=np.float64(100)), TypeError, "batch_size must be an integer, not float64"),
    (dict(eval_max=0), ValueError, "eval_max must be >= 1, got 0"),
    (dict(checkpoint_every=0), ValueError, "checkpoint_every must be >= 1, got 0"),
    (dict(max_seq_len=1), ValueError, "max_seq_len must be >= 2, got 1"),
    (dict(model_overrides=dict(depth=0)), ValueError, "depth must be >= 1, got 0"),
    (dict(model_overrides=dict(embed_dim=0)), ValueError, "embed_dim must be >= 1, got 0"),
    (dict(model_overrides=dict(embed_dim=20)), ValueError,
     "embed_dim 20 is not divisible by heads 8"),
    (dict(model_overrides=dict(width=3)), ValueError, r"unknown model overrides \['width'\]"),
    (dict(model_overrides=dict(dropout=1.0)), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(model_overrides=[("depth", 1)]), TypeError, "model_overrides must be a dict, not list"),
    (dict(preset="bbc-bert", model_overrides=dict(depth=1)), ValueError,
     "apply to the ViT presets only"),
    (dict(progress="yes"), TypeError, r"progress must be True or False, not str \('yes'\)"),
    (dict(resume=1), TypeError, "resume must be True or False, not int"),
    (dict(data=3.5), TypeError, "data must be a path, not float"),
    (dict(model_dir=""), ValueError, "model_dir is an empty path"),
])
def test_bad_run_settings_raise_before_any_folder(tmp_path, settings, error, match):
    kw = dict(preset="mnist-vit", optimizer="sgd", out_dir=tmp_path / "run") | settings
    with pytest.raises(error, match=match):
        train(kw.pop("preset"), kw.pop("optimizer"), kw.pop("out_dir"), **kw)
    assert not (tmp_path / "run").exists()


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file; give a folder"):
        RunConfig("mnist-vit", "sgd", tmp_path / "f")
    with pytest.raises(TypeError, match="out_dir must be a path, not NoneType"):
        RunConfig("mnist-vit", "sgd", None)


def test_missing_data_paths_are_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data .*nowhere: no such file or folder"):
        RunConfig("mnist-vit", "sgd", tmp_path / "run", data=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="preset cifar10-vit needs --data"):
        load_preset_data("cifar10-vit")
    with pytest.raises(ValueError, match="bbc-bert .* takes no --data"):
        load_preset_data("bbc-bert", tmp_path)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("loader, match", [
    (load_mnist, "no such folder"),
    (load_cifar10, "expected CIFAR-10 python batches"),
    (load_mnli, "expected GLUE MNLI"),
    (load_civil_comments, "no such Civil Comments CSV file or folder"),
])
def test_loaders_on_a_missing_folder_name_what_they_expected(tmp_path, loader, match):
    with pytest.raises(FileNotFoundError, match=match):
        loader(tmp_path / "missing")


def test_idx_reader_on_an_empty_file(tmp_path):
    (tmp_path / "x").write_bytes(b"")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "x")


def test_data_set_smaller_than_one_batch_leaves_no_folder(tmp_path, small_bundle):
    with pytest.raises(ValueError, match="8 training examples are fewer than one batch of 100"):
        train("mnist-vit", "sgd", tmp_path / "run", steps=1, data=small_bundle, device="cpu")
    assert not (tmp_path / "run").exists()


def test_a_run_folder_is_not_overwritten_without_resume(tmp_path, small_bundle):
    kw = dict(steps=1, data=small_bundle, device="cpu", batch_size=4, progress=False,
              model_overrides=dict(embed_dim=8, depth=1, heads=2, mlp_dim=8))
    train("mnist-vit", "sgd", tmp_path, **kw)
    before = (tmp_path / "metrics.csv").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        train("mnist-vit", "sgd", tmp_path, **kw)
    assert (tmp_path / "metrics.csv").read_bytes() == before


@pytest.mark.parametrize("kw, error, match", [
    (dict(optimizers="sgd"), TypeError, "optimizers must be a sequence, not str"),
    (dict(optimizers=[]), ValueError, "optimizers must not be empty"),
    (dict(optimizers=["sgd", "sgd"]), ValueError, r"optimizers \['sgd', 'sgd'\] repeat an entry"),
    (dict(seeds=3), TypeError, "seeds must be a sequence, not int"),
    (dict(seeds=[0, "1"]), TypeError, "seed must be an integer, not str"),
    (dict(optimizers=["sgd", "nope"]), ValueError, "unknown optimizer 'nope'"),
])
def test_compare_checks_every_run_before_the_first(tmp_path, kw, error, match):
    with pytest.raises(error, match=match):
        compare("mnist-vit", tmp_path / "cmp", steps=1, **kw)
    assert not (tmp_path / "cmp").exists()


def test_read_metrics_rejects_an_unknown_table_and_a_foreign_csv(tmp_path):
    with pytest.raises(ValueError, match="which must be 'metrics' or 'eval', got 'loss'"):
        read_metrics(tmp_path, "loss")
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"header \['a', 'b'\] is not"):
        read_metrics(tmp_path)


@pytest.mark.parametrize("args, match", [
    (["--depth", "0"], "depth must be >= 1, got 0"),
    (["--embed-dim", "0"], "embed_dim must be >= 1, got 0"),
    (["--embed-dim", "-8"], "embed_dim must be >= 1, got -8"),
    (["--eval-max", "0"], "eval_max must be >= 1, got 0"),
    (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["--lr", "nan"], "lr must be a positive finite number, got nan"),
    (["--lr", "-0.1"], "lr must be a positive finite number, got -0.1"),
    (["--lr", "1e400"], "lr must be a positive finite number, got inf"),
    (["--eta-max", "nan"], "eta_max must be a positive finite number, got nan"),
    (["--eta-max", "-1"], "eta_max must be a positive finite number, got -1.0"),
    (["--sps-c", "0"], "sps_c must be a positive finite number, got 0.0"),
    (["--steps", "0"], "steps must be >= 1, got 0"),
    (["--steps", "-1"], "steps must be >= 1, got -1"),
    (["--epochs", "0"], "epochs must be a positive finite number, got 0.0"),
    (["--epochs", "inf"], "epochs must be a positive finite number, got inf"),
    (["--max-seq-len", "0"], "max_seq_len must be >= 2, got 0"),
    (["--checkpoint-every", "0"], "checkpoint_every must be >= 1, got 0"),
    (["--seed", "-1"], r"seed must be in \[0, 4294967295\], got -1"),
    (["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["--data", "/definitely/not/here"], "data /definitely/not/here: no such file or folder"),
    (["--model-dir", "/definitely/not/here"], "model_dir /definitely/not/here: no such file"),
])
def test_cli_bad_values_exit_2_with_one_error_line_and_no_folder(tmp_path, capsys, args, match):
    out = tmp_path / "sub" / "run"
    rc = main(["train", "--preset", "mnist-vit", "--optimizer", "sngd", "--no-progress",
               "-o", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(match, err), err
    assert not (tmp_path / "sub").exists()


def test_cli_output_onto_a_file_is_an_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc = main(["train", "--preset", "mnist-vit", "--optimizer", "sgd", "-o", str(tmp_path / "file")])
    assert rc == 2 and "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("args, match", [
    (["--steps", "abc"], "argument --steps: invalid int value: 'abc'"),
    (["--sngd-cap", "length"], "argument --sngd-cap: invalid choice: 'length'"),
    (["--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
])
def test_cli_unparsable_values_are_argparse_errors(tmp_path, capsys, args, match):
    argv = ["train", "--preset", "mnist-vit", "--optimizer", "sgd", "-o", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as info:
        main(argv + args)
    assert info.value.code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_process_exit_status_and_stderr(tmp_path):
    # The real process: exit status 2, no traceback, no folder.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "realdata", "train", "--preset", "mnist-vit",
                           "--optimizer", "sgd", "--depth", "0", "-o", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr == "error: depth must be >= 1, got 0\n"
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def small_bundle():
    from realdata.data import DataBundle, Split

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 28, 28), generator=gen, dtype=torch.uint8)
    labels = torch.arange(12) % 10
    return DataBundle(name="toy", kind="image", classes=tuple(str(k) for k in range(10)),
                      train=Split(images[:8], labels[:8]), heldout=Split(images[8:], labels[8:]),
                      source="test")


def test_nan_loss_stops_the_run_and_is_recorded(tmp_path, small_bundle):
    # A learning rate that overflows the model: the run stops at the first non-finite loss.
    res = train("mnist-vit", "sgd", tmp_path, steps=20, data=small_bundle, device="cpu",
                batch_size=4, progress=False, lr=1e30,
                model_overrides=dict(embed_dim=8, depth=1, heads=2, mlp_dim=8))
    m = read_metrics(tmp_path)
    assert res.diverged_at == len(m["step"]) < 20
    assert not math.isfinite(m["loss"][-1]) and np.isfinite(m["loss"][:-1]).all()
