"""Summaries of run folders: budget fractions, steps to a target, spread over seeds, divergence.

The run folders are written by hand (``write_run``), so every expected number is computed
here independently of :mod:`realdata.summary`.
"""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from realdata.summary import (Spread, default_target, find_runs, format_table, summarize,
                              summarize_run, summary_columns, write_summary)
from realdata_helpers import write_run


def _window_mean(loss, step, window):
    return float(np.mean(loss[max(0, step - window):step]))


@pytest.mark.parametrize("budget", [40, 37, 200])
def test_budget_fractions_use_a_trailing_window_of_a_tenth_of_the_budget(tmp_path, budget):
    loss = 3.0 / np.sqrt(np.arange(1, budget + 1))
    run = summarize_run(write_run(tmp_path / "r", loss), tmp_path)
    window = math.ceil(0.1 * budget)
    for f, got in zip((0.25, 0.5, 1.0), run.loss):
        step = round(f * budget)
        np.testing.assert_allclose(got, _window_mean(loss, step, window), rtol=1e-12)
    assert run.run == "r" and run.diverged_at is None and run.seed == 0


def test_heldout_accuracy_is_the_latest_evaluation_at_or_before_each_fraction(tmp_path):
    # Budget 40, evaluations at 8, 16, 24, 32, 40: fractions at steps 10, 20, 40.
    run = summarize_run(write_run(tmp_path / "r", np.ones(40)), tmp_path)
    assert run.heldout_step == (8, 16, 40)
    np.testing.assert_allclose(run.heldout_acc, (0.008, 0.016, 0.040), rtol=1e-12)


def test_no_evaluation_before_a_fraction_is_undefined_not_zero(tmp_path):
    run = summarize_run(write_run(tmp_path / "r", np.ones(40), steps_per_epoch=30), tmp_path)
    assert run.heldout_step == (None, None, 40)
    assert math.isnan(run.heldout_acc[0]) and math.isnan(run.heldout_acc[1])
    s = summarize([run])[0]
    assert math.isnan(s.heldout_acc[0].mean)
    assert summary_columns(s)["heldout_step_25"] is None


@pytest.mark.parametrize("target", [2.0, 1.0, 0.5, 0.30])
def test_steps_to_target_is_the_first_step_whose_smoothed_loss_reaches_it(tmp_path, target):
    loss = 3.0 / np.sqrt(np.arange(1, 101))  # smoothed with a 10-step trailing window
    run = summarize_run(write_run(tmp_path / "r", loss), tmp_path)
    smooth = [_window_mean(loss, t, 10) for t in range(1, 101)]
    expected = next((t for t, v in zip(range(1, 101), smooth) if v <= target), math.inf)
    assert run.steps_to(target) == expected
    assert (expected == math.inf) == (target == 0.30)  # smoothed 3/sqrt(t) ends at 0.307


def test_spread_over_seeds_is_mean_min_max_and_target_counts_seeds(tmp_path):
    t = np.arange(1, 41)
    runs = [summarize_run(write_run(tmp_path / f"s{k}", c / t, seed=k,
                                    attn_max=np.full(40, 0.2 * (k + 1))), tmp_path)
            for k, c in enumerate([1.0, 4.0, 8.0])]
    finals = [_window_mean(c / t, 40, 4) for c in (1.0, 4.0, 8.0)]
    target = 0.1  # smoothed c/t: seed 0 reaches it, seeds 1 and 2 do not within 40 steps
    (s,) = summarize(runs, target_loss=target)
    np.testing.assert_allclose([s.loss[-1].mean, s.loss[-1].min, s.loss[-1].max],
                               [np.mean(finals), min(finals), max(finals)], rtol=1e-12)
    np.testing.assert_allclose([s.attn_max.mean, s.attn_max.min, s.attn_max.max],
                               [0.4, 0.2, 0.6], rtol=1e-12)
    assert s.seeds == (0, 1, 2) and s.target_reached == 1
    assert s.steps_to_target.min == runs[0].steps_to(target) and s.steps_to_target.max == math.inf
    assert summary_columns(s)["target_reached"] == "1/3"


def test_diverged_run_counts_as_infinite_loss_from_the_divergence_on(tmp_path):
    loss = np.r_[np.linspace(2.3, 1.0, 14), np.nan]  # budget 40, NaN at step 15 stops the run
    run = summarize_run(write_run(tmp_path / "d", loss, budget=40), tmp_path)
    assert run.diverged_at == 15
    assert math.isfinite(run.loss[0])  # step 10, before the divergence
    assert run.loss[1] == math.inf and run.loss[2] == math.inf
    assert run.steps_to(0.5) == math.inf and run.steps_to(2.0) < 15
    ok = summarize_run(write_run(tmp_path / "ok", np.ones(40), seed=1), tmp_path)
    (s,) = summarize([run, ok])
    assert s.diverged == (0,) and s.final_loss == math.inf and s.loss[-1].min == 1.0
    assert default_target([s]) is None
    path = write_summary(tmp_path / "t.csv", [summary_columns(s)])
    row = next(csv.DictReader(open(path)))
    assert row["loss_100_mean"] == "inf" and row["loss_100_min"] == "1.0" and row["diverged"] == "0"
    assert "inf" in format_table([s]) and "(1 diverged)" in format_table([s])


def test_settings_are_grouped_by_optimizer_and_step_sizes(tmp_path):
    runs = [summarize_run(write_run(tmp_path / f"{o}{lr}-{k}", np.full(20, lr + k), optimizer=o,
                                    lr=lr, seed=k), tmp_path)
            for o in ("sgd", "adam") for lr in (0.1, 0.2) for k in (0, 1)]
    groups = summarize(runs)
    assert [(g.setting["optimizer"], g.setting["lr"]) for g in groups] == [
        ("sgd", 0.1), ("sgd", 0.2), ("adam", 0.1), ("adam", 0.2)]
    np.testing.assert_allclose([g.final_loss for g in groups], [0.6, 0.7, 0.6, 0.7], rtol=1e-12)
    assert default_target(groups) == pytest.approx(0.7, rel=1e-12)


def test_find_runs_skips_unfinished_runs_with_a_warning_naming_them(tmp_path):
    write_run(tmp_path / "sgd" / "a", np.ones(5))
    write_run(tmp_path / "sgd" / "b", np.ones(5), finished=False)
    write_run(tmp_path / "c", np.ones(5), preset="bbc-bert")
    with pytest.warns(UserWarning, match=r"1 unfinished run\(s\) .*: sgd/b$"):
        found = find_runs(tmp_path, "mnist-vit")
    assert found == [tmp_path / "sgd" / "a"]
    assert find_runs(tmp_path, "bbc-bert") == [tmp_path / "c"]


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist or is not a folder"):
        find_runs(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json; not a run folder"):
        summarize_run(tmp_path)
    run_dir = write_run(tmp_path / "r", np.ones(8))
    with pytest.raises(ValueError, match=r"budget fractions must lie in \(0, 1\], got 1.5"):
        summarize_run(run_dir, fractions=(0.5, 1.5))
    run = summarize_run(run_dir)
    with pytest.raises(ValueError, match="share a setting and a seed"):
        summarize([run, run])
    with pytest.raises(ValueError, match="no runs to summarise"):
        summarize([])
    with pytest.raises(ValueError, match="target_loss must be a positive finite number"):
        summarize([run], target_loss=float("nan"))
    with pytest.raises(ValueError, match="no rows to write"):
        write_summary(tmp_path / "x.csv", [])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_summary(tmp_path / "no" / "x.csv", [{"a": 1}])


def test_write_summary_is_atomic_and_leaves_no_temporaries(tmp_path):
    rows = [{"a": 1.5, "b": None, "c": math.inf, "d": math.nan}]
    path = write_summary(tmp_path / "s.csv", rows)
    assert path.read_text() == "a,b,c,d\n1.5,,inf,\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


def test_spread_of_undefined_values_is_undefined():
    assert all(math.isnan(v) for v in vars(Spread.of([1.0, math.nan])).values())
    assert all(math.isnan(v) for v in vars(Spread.of([])).values())
    assert Spread.of([2.0, math.inf]) == Spread(math.inf, 2.0, math.inf)


# ----------------------------------------------------------------- the real-data figures' use
def test_figures_skip_interrupted_runs_and_name_runs_relative_to_their_folder(tmp_path, capsys):
    from paper_figs._realdata import display_path, find_runs as figure_runs, write_summaries

    write_run(tmp_path / "mnist" / "sgd-seed0", np.linspace(2.3, 1.0, 20))
    write_run(tmp_path / "mnist" / "sgd-seed1", np.linspace(2.3, 1.2, 20), seed=1)
    write_run(tmp_path / "mnist" / "adam-seed0", np.linspace(2.3, 2.0, 12), budget=20,
              optimizer="adam", lr=0.001, finished=False)
    with pytest.warns(UserWarning, match="mnist/adam-seed0"):
        dirs = figure_runs(tmp_path, "mnist-vit")
    assert [d.name for d in dirs] == ["sgd-seed0", "sgd-seed1"]
    assert figure_runs(tmp_path / "missing", "mnist-vit") == []
    assert display_path(tmp_path / "mnist") == "mnist"  # outside the repository: its name
    runs = [summarize_run(d, tmp_path) for d in dirs]
    path = write_summaries(tmp_path / "fig_summary.csv", {"mnist-vit": runs})
    row = next(csv.DictReader(open(path)))
    assert row["runs"] == "mnist/sgd-seed0;mnist/sgd-seed1" and row["seeds"] == "0;1"
    assert str(tmp_path) not in path.read_text()
    out = capsys.readouterr().out
    assert out.startswith("fig_summary, mnist-vit (min-max over seeds; target loss")


@pytest.mark.parametrize("config, label", [
    (dict(optimizer="sgd", lr=0.1, eta_max=None), " (lr 0.1)"),
    (dict(optimizer="sps", lr=None, eta_max=0.01, sps_c=0.5), r" ($\eta_{max}$ 0.01, c 0.5)"),
    (dict(optimizer="sngd", lr=0.001, eta_max=0.01, sngd_cap="step_length"),
     r" (lr 0.001, $\eta_{max}$ 0.01, cap step_length)"),
    (dict(optimizer="sngd", lr=0.001, eta_max=None, sngd_cap="none"), " (lr 0.001, cap none)"),
])
def test_figure_legends_show_the_sngd_variant_and_sps_c_when_recorded(config, label):
    from paper_figs._realdata import _hyper_label

    assert _hyper_label(config) == label


def test_full_mode_says_it_trains_and_for_how_long_then_resumes_into_the_runs_folder(
        tmp_path, capsys, monkeypatch):
    import contextlib

    import realdata
    from paper_figs import _realdata

    calls = []

    def fake_compare(preset, dest, seeds, progress, resume, **budget):
        calls.append(dict(preset=preset, dest=dest, seeds=seeds, resume=resume, **budget))
        for seed in seeds:
            write_run(Path(dest) / f"sgd-seed{seed}", np.ones(budget["steps"]), seed=seed,
                      preset=preset)

    monkeypatch.setattr(realdata, "compare", fake_compare)
    with contextlib.ExitStack() as stack:
        dirs, root, source = _realdata.obtain_runs("mnist-vit", tmp_path, False, stack)
    # 400 steps x 3 seeds x 4 optimizers x 0.12 s = 9.6 minutes.
    assert capsys.readouterr().out == (f"no records under {tmp_path}/mnist-vit: training the "
                                       "presets, about 10 minutes on 2 idle cores\n")
    assert calls == [dict(preset="mnist-vit", dest=tmp_path / "mnist-vit", seeds=(0, 1, 2),
                          resume=True, steps=400)]
    assert root == tmp_path / "mnist-vit" and len(dirs) == 3
    assert source == "trained now: steps 400, 3 seed(s)"
