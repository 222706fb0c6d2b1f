"""Step-size sweeps: grid layout, best point, resume, divergence, the command line."""

import argparse
import csv
import json
import math

import numpy as np
import pytest

from realdata_helpers import TINY, small_mnist_bundle, write_run
from realdata.sweep import add_parser, default_grid, sweep

@pytest.fixture(scope="module")
def small_mnist():
    """100 training / 50 held-out images: 2 steps per epoch at batch 50."""
    return small_mnist_bundle(100, 50)


def _hand_written_grid(root, finals):
    """Finished runs for ``finals[(optimizer, lr, eta_max)] = [final loss per seed]``."""
    for (opt, lr, eta), per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            name = "-".join(([f"lr{lr:g}"] if lr else []) + ([f"eta{eta:g}"] if eta else [])
                            + [f"seed{seed}"])
            loss = np.r_[np.linspace(2.3, final, 20)] if math.isfinite(final) else \
                np.r_[np.linspace(2.3, 3.0, 9), np.nan]
            write_run(root / opt / name, loss, optimizer=opt, lr=lr, eta_max=eta, seed=seed,
                      budget=20)


FINALS = {
    ("sgd", 0.1, None): [0.9, 1.1],
    ("sgd", 1.0, None): [0.2, math.nan],  # best seed of all, but the other diverged
    ("sgd", 0.01, None): [1.5, 1.4],
    ("sngd", 0.01, 0.1): [0.8, 0.6],
    ("sngd", 0.01, 1.0): [0.7, 0.8],
    ("sps", None, 0.1): [1.2, 1.3],
    ("sps", None, 1.0): [1.0, 1.0],
}


def _final(f):
    """Final loss of a hand-written run ending at ``f``: mean of its last 2 of 20 steps."""
    return f + (2.3 - f) / 38


def test_best_point_is_lowest_mean_final_loss_and_diverged_runs_count_as_inf(tmp_path):
    _hand_written_grid(tmp_path, FINALS)
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd", "sngd", "sps"],
                lrs={"sgd": [0.1, 1.0, 0.01], "sngd": [0.01]}, eta_maxs=[0.1, 1.0],
                seeds=[0, 1], steps=20, echo=False)
    assert (res.trained, res.reused) == (0, 14)  # nothing trained: no data was even loaded
    best = {k: (v.setting["lr"], v.setting["eta_max"]) for k, v in res.best.items()}
    assert best == {"sgd": (0.1, None), "sngd": (0.01, 0.1), "sps": (None, 1.0)}
    np.testing.assert_allclose(res.best["sngd"].final_loss, (_final(0.8) + _final(0.6)) / 2,
                               rtol=1e-12)


def test_sweep_table_rows_the_best_points_and_all_rows_every_point(tmp_path):
    finals = {k: v for k, v in FINALS.items() if k[0] != "sps"}
    _hand_written_grid(tmp_path, finals)
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd", "sngd"],
                lrs={"sgd": [0.1, 1.0, 0.01], "sngd": [0.01]}, eta_maxs=[0.1, 1.0],
                seeds=[0, 1], steps=20, echo=False)
    table = list(csv.DictReader(open(res.table_path)))
    assert [(r["optimizer"], r["lr"], r["eta_max"]) for r in table] == [
        ("sgd", "0.1", ""), ("sngd", "0.01", "0.1")]
    assert [r["grid_points"] for r in table] == ["3", "2"]
    assert [r["diverged_points"] for r in table] == ["1", "0"]
    # The target is the higher of the two best mean final losses (sgd's, above sngd's).
    np.testing.assert_allclose(res.target_loss, (_final(0.9) + _final(1.1)) / 2, rtol=1e-12)
    assert [r["target_reached"] for r in table] == ["1/2", "2/2"]
    rows = list(csv.DictReader(open(res.all_path)))
    assert len(rows) == 5 and sum(r["best"] == "True" for r in rows) == 2
    diverged = next(r for r in rows if r["lr"] == "1.0")
    assert diverged["loss_100_mean"] == "inf" and diverged["diverged"] == "1"
    assert diverged["loss_100_min"] != "inf"  # the spread over seeds still shows seed 0
    assert res.table_path.name == "sweep_table.csv" and res.all_path.name == "sweep_all.csv"


def test_every_point_diverged_is_reported_not_a_crash(tmp_path):
    _hand_written_grid(tmp_path, {("sgd", 10.0, None): [math.nan, math.nan]})
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[10.0], seeds=[0, 1], steps=20,
                echo=False)
    assert res.best["sgd"].final_loss == math.inf and res.target_loss is None
    assert res.best["sgd"].diverged == (0, 1)


def test_explicit_target_loss_counts_seeds_reaching_it(tmp_path):
    _hand_written_grid(tmp_path, {("sgd", 0.1, None): [0.9, 1.1]})
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[0.1], seeds=[0, 1], steps=20,
                target_loss=1.0, echo=False)
    assert res.best["sgd"].target_reached == 1 and res.best["sgd"].steps_to_target.max == math.inf


def test_tiny_sweep_trains_the_grid_then_resumes_without_retraining(tmp_path, small_mnist, capsys):
    kwargs = dict(optimizers=["sgd", "sps"], lrs=[0.05, 0.1], eta_maxs=[0.01], seeds=[0, 1],
                  steps=3, data=small_mnist, device="cpu", batch_size=50, eval_max=20,
                  model_overrides=TINY)
    first = sweep("mnist-vit", tmp_path, **kwargs)
    assert (first.trained, first.reused) == (6, 0)
    folders = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/*"))
    assert folders == ["sgd/lr0.05-seed0", "sgd/lr0.05-seed1", "sgd/lr0.1-seed0",
                       "sgd/lr0.1-seed1", "sps/eta0.01-seed0", "sps/eta0.01-seed1"]
    for d in tmp_path.glob("*/*"):
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["steps"] == 3 and cfg["model_config"]["embed_dim"] == 16
    stamp = {d: (d / "metrics.csv").stat().st_mtime_ns for d in tmp_path.glob("*/*")}
    # An interrupted run (no result.json) is finished, the others are reused untouched.
    (tmp_path / "sgd" / "lr0.1-seed1" / "result.json").unlink()
    second = sweep("mnist-vit", tmp_path, **kwargs)
    assert (second.trained, second.reused) == (1, 5)
    assert (tmp_path / "sgd" / "lr0.1-seed1" / "result.json").is_file()
    for d, t in stamp.items():
        if d.name != "lr0.1-seed1":
            assert (d / "metrics.csv").stat().st_mtime_ns == t
    out = capsys.readouterr().out
    assert "1 run(s) trained, 5 reused" in out and "steps_to_target" in out
    assert [s.setting["lr"] for s in second.grid] == [0.05, 0.1, None]


def test_a_finished_run_of_other_settings_is_not_silently_reused(tmp_path):
    write_run(tmp_path / "sgd" / "lr0.1-seed0", np.ones(10), lr=0.1, budget=10)
    with pytest.raises(ValueError, match=r"other settings .*'steps': \(10, 20\)"):
        sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[0.1], seeds=[0], steps=20,
              echo=False)


def test_default_grids_are_centred_on_the_preset_and_skip_absent_step_sizes():
    assert default_grid("mnist-vit", "sgd") == ((0.01, 0.0316, 0.1, 0.316, 1.0), ())
    assert default_grid("mnist-vit", "adam") == ((0.0001, 0.000316, 0.001, 0.00316, 0.01), ())
    assert default_grid("bbc-bert", "sngd") == ((0.01, 0.1, 1.0), (0.1, 1.0, 10.0))
    assert default_grid("bbc-bert", "sps") == ((), (0.1, 1.0, 10.0))


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="nope"), "unknown preset 'nope'"),
    (dict(optimizers=["sgd", "lbfgs"]), "unknown optimizer 'lbfgs'"),
    (dict(optimizers="sgd"), "non-empty sequence of names"),
    (dict(optimizers=["sgd", "sgd"]), "repeat a name"),
    (dict(seeds=[]), "seeds must be distinct integers"),
    (dict(seeds=[0, 0]), "seeds must be distinct integers"),
    (dict(seeds=[0.5]), "seeds must be distinct integers"),
    (dict(lrs=[0.1, -1.0]), "lrs values must be positive finite numbers; sgd got -1.0"),
    (dict(lrs=[float("inf")]), "positive finite"),
    (dict(lrs=[True]), "positive finite"),
    (dict(lrs={"sgd": []}), "lrs grid of sgd is empty"),
    (dict(steps=3, epochs=1), "give steps or epochs, not both"),
    (dict(lr=0.1), "'lr' is set by the sweep"),
    (dict(out_dir=__file__), "exists and is not a folder"),
])
def test_bad_sweep_arguments_raise_value_errors_naming_the_problem(tmp_path, kwargs, message):
    args = dict(preset="mnist-vit", out_dir=tmp_path, optimizers=["sgd"], seeds=[0], echo=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sweep(**args)
    assert not (tmp_path / "sgd").exists()  # nothing trained, no run folder left


def test_numpy_integer_seeds_are_accepted(tmp_path):
    _hand_written_grid(tmp_path, {("sgd", 0.1, None): [0.9, 1.1]})
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[0.1], seeds=np.arange(2),
                steps=20, echo=False)
    assert res.best["sgd"].seeds == (0, 1)


def _cli(argv):
    root = argparse.ArgumentParser(prog="python -m realdata")
    add_parser(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(argv)
    return args.func(args)


def test_cli_tabulates_a_finished_grid_and_prints_the_table(tmp_path, capsys):
    _hand_written_grid(tmp_path, {k: v for k, v in FINALS.items() if k[0] == "sngd"})
    rc = _cli(["sweep", "--preset", "mnist-vit", "--optimizers", "sngd", "--lrs", "sngd=0.01",
               "--eta-maxs", "0.1", "1", "--steps", "20", "-o", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "0 run(s) trained, 4 reused" in out
    assert out.splitlines()[-1].split()[:3] == ["sngd", "0.01", "0.1"]
    assert (tmp_path / "sweep_table.csv").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--lrs", "sgd=0.1,x"], "--lrs: 'sgd=0.1,x' is not a number"),
    (["--lrs", "foo=0.1"], "--lrs: unknown optimizer 'foo'"),
    (["--lrs", "0.1", "sgd=0.2"], "--lrs: give one grid for all optimizers"),
    (["--eta-maxs", "0"], "eta_maxs values must be positive finite numbers"),
    (["--lrs", "-1"], "lrs values must be positive finite numbers"),
])
def test_cli_bad_grids_exit_2_with_one_error_line(tmp_path, capsys, argv, message):
    rc = _cli(["sweep", "--preset", "mnist-vit", "--optimizers", "sgd", "sngd", "-o",
               str(tmp_path / "out")] + argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_output_onto_a_file_exits_2(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert _cli(["sweep", "--preset", "mnist-vit", "-o", str(target)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--eval-max", "0"], ["--target-loss", "nan"],
                                  ["--embed-dim", "-3"]])
def test_cli_rejects_non_positive_numbers_at_parse_time(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:
        _cli(["sweep", "--preset", "mnist-vit", "-o", str(tmp_path)] + argv)
    assert exc.value.code == 2 and "must be" in capsys.readouterr().err


def test_sweep_figure_draws_the_best_points_with_relative_run_names(tmp_path):
    from paper_figs._realdata import sweep_figure

    sweep_dir = tmp_path / "sweep"
    _hand_written_grid(sweep_dir, {k: v for k, v in FINALS.items() if k[0] == "sngd"})
    sweep("mnist-vit", sweep_dir, optimizers=["sngd"], lrs=[0.01], eta_maxs=[0.1, 1.0],
          seeds=[0, 1], steps=20, echo=False)
    paths = sweep_figure(sweep_dir, tmp_path / "fig", "sweep_x")
    assert [p.name for p in paths] == ["sweep_x.png", "sweep_x.csv", "sweep_x_runs.csv",
                                       "sweep_x_summary.csv"]
    runs = list(csv.DictReader(open(tmp_path / "fig" / "sweep_x_runs.csv")))
    assert [r["run_dir"] for r in runs] == ["sngd/lr0.01-eta0.1-seed0", "sngd/lr0.01-eta0.1-seed1"]
    for p in paths[1:]:
        assert str(tmp_path) not in p.read_text()
    with pytest.raises(FileNotFoundError, match="sweep_table.csv not found"):
        sweep_figure(tmp_path / "fig", tmp_path / "fig", "y")


def test_a_finished_run_of_another_model_width_or_batch_is_not_reused(tmp_path):
    write_run(tmp_path / "sgd" / "lr0.1-seed0", np.ones(10), lr=0.1, budget=10,
              model_config=dict(embed_dim=64))
    with pytest.raises(ValueError, match=r"'model_config.embed_dim': \(64, 16\)"):
        sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[0.1], seeds=[0], steps=10,
              model_overrides=dict(embed_dim=16), echo=False)
    with pytest.raises(ValueError, match=r"'batch_size': \(100, 50\)"):
        sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[0.1], seeds=[0], steps=10,
              batch_size=50, echo=False)
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd"], lrs=[0.1], seeds=[0], steps=10,
                model_overrides=dict(embed_dim=64), batch_size=100, echo=False)
    assert res.reused == 1


def test_tabulate_only_tables_the_finished_part_of_a_grid_and_trains_nothing(tmp_path, capsys):
    _hand_written_grid(tmp_path, {("sgd", 0.1, None): [0.9, 1.1], ("sgd", 1.0, None): [0.5],
                                  ("sngd", 0.01, 0.1): [0.8, 0.6]})
    res = sweep("mnist-vit", tmp_path, optimizers=["sgd", "adam", "sngd"],
                lrs={"sgd": [0.1, 1.0], "sngd": [0.01], "adam": [0.001]}, eta_maxs=[0.1],
                seeds=[0, 1], steps=20, train_missing=False)
    assert res.trained == 0 and res.reused == 5
    assert res.missing == ["sgd/lr1-seed1", "adam/lr0.001-seed0", "adam/lr0.001-seed1"]
    assert list(res.best) == ["sgd", "sngd"]  # no adam run: no adam row
    assert res.best["sgd"].setting["lr"] == 1.0 and res.best["sgd"].seeds == (0,)
    assert "left out of the tables (3)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no finished run of this grid"):
        sweep("mnist-vit", tmp_path, optimizers=["adam"], seeds=[0], steps=20,
              train_missing=False, echo=False)
