"""The figure pipeline: ``python -m paper_figs --quick`` writes every PNG and the CSV behind it.

One quick rebuild of all figures (module fixture, in this process so that every figure
object can be inspected before it is written; real-data figures trained on the embedded
data in a temporary runs folder), then checks on what it wrote: the PNG decodes at the
expected size, no text of a figure is clipped, no output carries an absolute path of
this machine, every CSV has its columns, numeric cells are finite, empty cells appear
only where the row says why, and band tables satisfy ``lo <= mean <= hi``. The plotted
claims themselves are asserted by the rates suite.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image

import paper_figs.__main__ as driver
from paper_figs import output
from paper_figs.measure import LN10, law_log10
from paper_figs.output import portable_path, save_png, write_csv
from paper_figs.plotting import clipped_texts, new_figure, new_row_figure, seed_band, wrap_title
from paper_figs.registry import FIGURES
from theory import RateLaw

ROOT = Path(__file__).resolve().parents[1]
BAND = ("t", "mean", "lo", "hi")


def _any(row):
    return True


def _status_infeasible(row):
    return row["status"] == "infeasible"


# file -> (columns, numeric columns, {column: condition a row with that cell empty must meet})
EXPECTED = {
    "rates_fixed_decoder": {
        "rates_fixed_decoder.csv": (("panel", "method", "scale") + BAND, BAND,
                                    {"mean": _any, "lo": _any, "hi": _any}),
        "rates_fixed_decoder_predicted.csv": (
            ("panel", "method", "scale", "law", "parameter", "t", "predicted"),
            ("parameter", "t", "predicted"), {"predicted": _any}),
    },
    "global_vs_local": {
        "global_vs_local.csv": (
            ("family", "seed", "method", "lr", "steps", "category", "selection", "opt",
             "one_minus_corr_global", "one_minus_corr_selection"),
            ("seed", "lr", "steps", "one_minus_corr_global", "one_minus_corr_selection"),
            {"one_minus_corr_selection": lambda r: r["category"] == "infeasible"}),
    },
    "joint_training": {
        "joint_training.csv": (("panel", "quantity", "method", "scale") + BAND, BAND,
                               {"mean": _any, "lo": _any, "hi": _any}),
        "joint_training_predicted.csv": (
            ("panel", "method", "law", "parameter", "scale", "t", "predicted"),
            ("parameter", "t", "predicted"), {"predicted": _any}),
    },
    "param_w_vs_kq": {
        "param_w_vs_kq.csv": (
            ("d", "seed", "status", "steps", "lr", "rank_rtol", "rank_fro", "rank_nuc",
             "gap_W_fro", "gap_W_nuc", "gap_kq_fro", "gap_kq_nuc"),
            ("d", "seed", "steps", "lr", "rank_rtol", "rank_fro", "rank_nuc", "gap_W_fro",
             "gap_W_nuc", "gap_kq_fro", "gap_kq_nuc"),
            {k: _status_infeasible for k in ("rank_fro", "rank_nuc", "gap_W_fro", "gap_W_nuc",
                                             "gap_kq_fro", "gap_kq_nuc")}),
    },
    "scaling": {
        "scaling.csv": (
            ("swept", "n", "T", "d", "seed", "method", "lr", "budget", "status", "reached",
             "iterations"),
            ("n", "T", "d", "seed", "lr", "budget", "reached", "iterations"),
            {"reached": _status_infeasible,
             "iterations": lambda r: r["status"] == "infeasible" or r["reached"] == "0"}),
    },
}
for _name in ("realdata_language", "realdata_vision"):
    EXPECTED[_name] = {
        f"{_name}.csv": (("preset", "optimizer", "quantity", "smoothing_window", "seeds") + BAND,
                         ("smoothing_window", "seeds") + BAND,
                         {"mean": _any, "lo": _any, "hi": _any}),
        f"{_name}_runs.csv": (
            ("preset", "optimizer", "seed", "steps", "lr", "eta_max", "batch_size",
             "max_seq_len", "dataset", "stand_in_for", "source", "run_dir"),
            ("seed", "steps", "lr", "eta_max", "batch_size", "max_seq_len"),
            # SPS has no lr, SGD/Adam no eta_max, the ViT no token limit, real data no stand-in.
            {"lr": lambda r: r["optimizer"] == "sps",
             "eta_max": lambda r: r["optimizer"] in ("sgd", "adam"),
             "max_seq_len": lambda r: r["preset"].endswith("-vit"),
             "stand_in_for": _any}),
        f"{_name}_summary.csv": (
            ("preset", "optimizer", "lr", "eta_max", "sngd_cap", "sps_c", "steps", "seeds",
             "diverged")
            + tuple(f"loss_{p}_{s}" for p in (25, 50, 100) for s in ("mean", "min", "max"))
            + tuple(c for p in (25, 50, 100) for c in
                    (*(f"heldout_acc_{p}_{s}" for s in ("mean", "min", "max")),
                     f"heldout_step_{p}"))
            + ("target_loss", "steps_to_target_mean", "steps_to_target_min",
               "steps_to_target_max", "target_reached")
            + tuple(f"attn_{q}_{s}" for q in ("entropy", "max") for s in ("mean", "min", "max"))
            + ("runs",),
            ("steps", "target_loss")
            + tuple(f"loss_{p}_{s}" for p in (25, 50, 100) for s in ("mean", "min", "max"))
            + tuple(f"attn_{q}_{s}" for q in ("entropy", "max") for s in ("mean", "min", "max")),
            # lr/eta_max/variants exist only for the optimizers that have them; quick runs are
            # too short for a held-out evaluation before the end, and diverge nowhere.
            {"lr": lambda r: r["optimizer"] == "sps",
             "eta_max": lambda r: r["optimizer"] in ("sgd", "adam"),
             "sngd_cap": lambda r: r["optimizer"] != "sngd",
             "sps_c": lambda r: r["optimizer"] != "sps",
             "diverged": _any,
             **{f"heldout_{c}_{p}{s}": _any for c in ("acc", "step") for p in (25, 50)
                for s in (("_mean", "_min", "_max") if c == "acc" else ("",))}}),
    }


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "paper_figs", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Drawn:
    """What a figure showed, recorded just before it was written."""

    clipped: list
    texts: list


@dataclass
class Build:
    out: Path
    runs: Path
    stdout: str
    drawn: dict  # figure name -> Drawn


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    runs = tmp_path_factory.mktemp("runs")  # empty: the real-data figures train now
    drawn = {}

    def recording_save_png(fig, path):
        drawn[Path(path).stem] = Drawn(clipped_texts(fig),
                                       [t.get_text() for t in fig.findobj(Text)])
        return save_png(fig, path)

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setattr(output, "save_png", recording_save_png)
        status = driver.main(["--quick", "--out", str(out), "--runs", str(runs)])
    assert status == 0, stdout.getvalue()
    return Build(out, runs, stdout.getvalue(), drawn)


def _machine_paths(build):
    """Absolute paths of this machine that no output may contain."""
    paths = {build.out, build.runs, Path.home(), Path.cwd(), ROOT, Path(tempfile.gettempdir())}
    return sorted({str(p) for p in paths} | {str(p.resolve()) for p in paths}, key=len,
                  reverse=True)


def test_registry_matches_expectations():
    assert set(EXPECTED) == set(FIGURES)


@pytest.mark.slow
def test_printed_list_is_what_was_written(quick):
    out = quick.out
    printed = {Path(line.strip()) for line in quick.stdout.splitlines() if line.startswith("  ")}
    on_disk = {p for p in out.iterdir()}
    expected = {out / f for files in EXPECTED.values() for f in files} | \
               {out / f"{name}.png" for name in EXPECTED}
    assert printed == on_disk == expected, (printed ^ expected, on_disk ^ expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_png_decodes(quick, name):
    img = mpimg.imread(quick.out / f"{name}.png")
    # 8 x 5 inches at 150 dpi, as the README gallery expects
    assert img.shape[2] in (3, 4)
    np.testing.assert_allclose(img.shape[:2], (750, 1200), atol=2)
    assert img[..., :3].std() > 0.05, "blank image"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_text_is_clipped(quick, name):
    # Every title, label, legend entry and drawn tick label lies inside the figure.
    assert quick.drawn[name].clipped == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_machine_path_in_outputs(quick, name):
    forbidden = _machine_paths(quick)
    texts = {f"text {t!r}": t for t in quick.drawn[name].texts}
    with Image.open(quick.out / f"{name}.png") as img:
        img.load()
        # The PNG's text chunks (matplotlib writes "Software"; nothing may name a path).
        texts.update({f"PNG chunk {k}": str(v) for k, v in img.text.items()})
    assert texts, "the figure recorded no text at all"
    for filename in EXPECTED[name]:
        with open(quick.out / filename, newline="") as f:
            for k, row in enumerate(csv.reader(f)):
                texts.update({f"{filename} row {k} cell {j}": c for j, c in enumerate(row)})
    leaks = [(where, p) for where, t in texts.items() for p in forbidden if p in t]
    assert leaks == []


@pytest.mark.slow
@pytest.mark.parametrize("name, filename",
                         [(n, f) for n, files in sorted(EXPECTED.items()) for f in files])
def test_csv_columns_and_values(quick, name, filename):
    columns, numeric, may_be_empty = EXPECTED[name][filename]
    with open(quick.out / filename, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == columns
        rows = list(reader)
    assert rows, f"{filename} has no rows"
    for k, row in enumerate(rows):
        for col in columns:
            cell = row[col]
            if cell == "":
                assert col in may_be_empty and may_be_empty[col](row), \
                    f"{filename} row {k}: unexplained empty {col!r}: {row}"
            elif col in numeric:
                assert math.isfinite(float(cell)), f"{filename} row {k}: {col} = {cell!r}"
    if {"mean", "lo", "hi"} <= set(columns):
        band = np.array([[float(r[c]) for c in ("lo", "mean", "hi")] for r in rows
                         if r["mean"] != ""])
        # most points are defined; those that are respect the band
        assert len(band) >= 0.5 * len(rows)
        assert np.all(band[:, 0] <= band[:, 1] + 1e-12 * np.abs(band[:, 1]) + 1e-300)
        assert np.all(band[:, 1] <= band[:, 2] + 1e-12 * np.abs(band[:, 1]) + 1e-300)


@pytest.mark.slow
def test_infeasible_instances_are_reported_not_counted(quick):
    with open(quick.out / "param_w_vs_kq.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # d = 2 < max(T - 1, n): some instances of the quick sweep are infeasible, and they
    # carry no measurement at all
    bad = [r for r in rows if r["status"] == "infeasible"]
    assert bad and all(r["gap_W_fro"] == "" and r["rank_nuc"] == "" for r in bad)
    ok = [r for r in rows if r["status"] != "infeasible"]
    assert ok and all(r["gap_W_fro"] != "" for r in ok)


@pytest.mark.slow
def test_only_rebuilds_the_named_figure(tmp_path):
    proc = _run("--quick", "--only", "global_vs_local", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_vs_local.csv",
                                                          "global_vs_local.png"]
    # Progress counts figures and time spent; it never guesses the time left.
    progress = [line for line in proc.stderr.replace("\r", "\n").splitlines()
                if line.startswith("figures:")]
    assert progress and progress[-1].startswith("figures: 1/1 done, 00:"), progress
    assert not any("<" in line or "fig/s" in line for line in progress), progress


@pytest.mark.parametrize("flag", ["--out", "--runs"])
def test_a_file_given_as_folder_is_a_clear_error(tmp_path, capsys, flag):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SystemExit) as exc:
        driver.main(["--only", "scaling", "--out", str(tmp_path / "out"), flag, str(afile)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {flag} {afile} is a file" in err
    assert not (tmp_path / "out").exists(), "nothing may be built when an argument is wrong"


def test_unknown_name_is_a_clear_error(tmp_path):
    proc = _run("--only", "rates_fixed_decoder", "no_such_figure", "--out", tmp_path,
                timeout=120)
    assert proc.returncode == 2
    assert "unknown figure name(s) 'no_such_figure'" in proc.stderr
    assert all(name in proc.stderr for name in FIGURES)
    assert not any(tmp_path.iterdir()), "nothing may be built when a name is wrong"


# ------------------------------------------------------------------ helpers
def test_write_csv_refuses_non_finite_and_names_the_column(tmp_path):
    with pytest.raises(ValueError, match="column 'b' holds the non-finite value nan"):
        write_csv(tmp_path / "x.csv", {"a": [1.0, 2.0], "b": [0.5, float("nan")]})
    with pytest.raises(ValueError, match="differ in length"):
        write_csv(tmp_path / "x.csv", {"a": [1.0], "b": [1.0, 2.0]})
    assert list(tmp_path.iterdir()) == [], "a failed write leaves no file behind"


def test_write_csv_round_trip_is_exact(tmp_path):
    vals = [1e-300, -0.1, 1 / 3, 12345.678901234567]
    path = write_csv(tmp_path / "x.csv", {"v": vals, "note": [None, "a", "b", "c"]})
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["v"]) for r in rows] == vals
    assert rows[0]["note"] == ""


@pytest.mark.parametrize("seed", range(3))
def test_seed_band(seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((5, 7))
    v[2, 3] = np.nan
    mean, lo, hi = seed_band(v)
    ok = np.arange(7) != 3
    np.testing.assert_allclose(mean[ok], v[:, ok].mean(axis=0), rtol=1e-14)
    np.testing.assert_array_equal(lo[ok], v[:, ok].min(axis=0))
    np.testing.assert_array_equal(hi[ok], v[:, ok].max(axis=0))
    assert np.isnan(mean[3]) and np.isnan(lo[3]) and np.isnan(hi[3])


def test_a_failing_figure_fails_the_command_after_the_others(monkeypatch, capsys, tmp_path):
    import paper_figs.__main__ as driver

    built = []

    def fake_build(name, out_dir, quick=False, runs=None):
        built.append(name)
        if name == "joint_training":
            raise RuntimeError("boom")
        return [Path(out_dir) / f"{name}.png"]

    monkeypatch.setattr(driver, "build_figure", fake_build)
    assert driver.main(["--quick", "--out", str(tmp_path)]) == 1
    assert built == list(FIGURES), "every figure is tried, in registry order"
    err = capsys.readouterr().err
    assert "1 of 7 figure(s) failed: joint_training (RuntimeError: boom)" in err
    assert "figures: 7/7 done" in err


def test_importing_the_figures_changes_no_global_state():
    # No backend selection, pyplot, umask or environment change at import time.
    code = """
import os, sys, importlib, matplotlib
umask = os.umask(0o022); os.umask(umask)
# Reading rcParams["backend"] would itself pick a backend: compare the other keys.
keys = [k for k in matplotlib.rcParams if k != "backend"]
env, rc = dict(os.environ), {k: matplotlib.rcParams[k] for k in keys}
names = importlib.import_module("paper_figs.registry").FIGURES
for mod in ("paper_figs.common", "paper_figs.__main__", *(f"paper_figs.plot_{n}" for n in names)):
    importlib.import_module(mod)
now = os.umask(0o022); os.umask(now)
assert now == umask, (now, umask)
assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
assert {k: matplotlib.rcParams[k] for k in keys} == rc, "rcParams changed at import"
assert matplotlib.get_backend(auto_select=False) is None, "a backend was selected"
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
print("clean")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items()
                                            if k != "MPLBACKEND"})
    assert proc.returncode == 0 and proc.stdout.strip() == "clean", proc.stderr[-3000:]


@pytest.mark.parametrize("width", [3.0, 5.0, 8.0])
def test_wrapped_titles_fit_and_keep_math_whole(width):
    title = ("Fixed decoder, equal-score family (n=6, T=8, d=10, mean $\\|W_{mm}\\|$ = 3.21), "
             "10 seeds\nlines: geometric mean, bands: min-max over seeds; dashed: "
             "$\\propto e^{-0.1\\,t}$ predicted slope, anchored on the measured mean")
    fig, _ = new_figure(1, 1, "", figsize=(width, 3.0))
    wrapped = wrap_title(fig, title, 9)
    # Only spaces turned into line breaks: the words, math spans included, are unchanged.
    assert wrapped.split() == title.split()
    assert all(line.count("$") % 2 == 0 for line in wrapped.split("\n"))
    fig.suptitle(wrapped, fontsize=9)
    renderer = fig.canvas.get_renderer()
    lines = wrapped.split("\n")
    assert len(lines) > 2 if width < 8 else len(lines) == 2
    for line in lines:
        probe = Text(text=line, fontsize=9, figure=fig)
        # A line is at most 96 % of the figure wide (1 px of slack for antialiasing).
        assert probe.get_window_extent(renderer).width <= 0.96 * fig.bbox.width + 1, line
    assert clipped_texts(fig) == []
    # A line that fits is left alone.
    assert wrap_title(fig, "short", 9) == "short"


def test_long_row_titles_are_wrapped_not_clipped():
    note = ("fashion-vit (Fashion-MNIST, the CIFAR-10 stand-in) not shown: the Debian package "
            "dataset-fashion-mnist is not installed, so only the MNIST records are drawn here")
    fig, axes = new_row_figure(3, "title\n" + note, [note, "short row"])
    assert axes.shape == (2, 3)
    assert clipped_texts(fig) == []
    assert fig.get_suptitle().count("\n") >= 2


def test_clipped_texts_names_what_leaves_the_figure():
    fig, axes = new_figure(1, 1, "fine")
    assert clipped_texts(fig) == []
    axes[0, 0].set_xlabel("x")
    fig.text(0.5, 1.2, "above the top")
    fig.text(-0.5, 0.5, "left of the figure")
    assert clipped_texts(fig) == ["text 'above the top'", "text 'left of the figure'"]


@pytest.mark.parametrize("path, start, expected", [
    ("/a/runs/mnist-vit/sgd-seed0", "/a/runs", "mnist-vit/sgd-seed0"),
    ("/a/runs", "/a/runs", "."),
    ("/b/other/records", "/a/runs", "records"),
    ("/a/runs/../x/y", "/a/runs", "y"),
])
def test_portable_path_is_never_absolute(path, start, expected):
    assert portable_path(path, start) == expected
    assert not os.path.isabs(portable_path(path, start))


def test_save_png_is_atomic_and_refuses_a_folder(tmp_path):
    fig, _ = new_figure(1, 1, "x")
    path = save_png(fig, tmp_path / "sub" / "a.png")
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]
    (tmp_path / "b.png").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        save_png(fig, tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "sub"]


LAWS = [RateLaw("exp", rate=0.3, log_values=True), RateLaw("power", exponent=-1.5),
        RateLaw("power", exponent=-1.0, log_values=True), RateLaw("logpower", exponent=-2.0),
        RateLaw("linear", slope=0.7), RateLaw("log", slope=2.0)]


@pytest.mark.parametrize("law", LAWS, ids=str)
def test_law_log10_passes_through_its_anchor_with_the_law(law):
    t = np.array([10.0, 20.0, 40.0])
    y = law_log10(law, t, (20.0, 1.0))
    np.testing.assert_allclose(y[1], 1.0, rtol=0, atol=1e-15)  # measured: exactly 1
    value = 10.0 ** y
    # measured relative deviations below: at most 1.1e-15 (additive), 7e-16 (multiplicative)
    if law.model in ("linear", "log"):  # additive laws: differences are fixed by the law
        step = law.value * (t - 20.0) if law.model == "linear" else law.value * np.log(t / 20.0)
        np.testing.assert_allclose(value - value[1], step, rtol=5e-15, atol=1e-15)
    else:  # multiplicative laws: ratios are
        shape = {"exp": np.exp(-law.value * t), "power": t ** law.value,
                 "logpower": np.log(t) ** law.value}[law.model]
        np.testing.assert_allclose(value / value[1], shape / shape[1], rtol=3e-15)


def test_law_log10_stays_exact_below_the_float64_range():
    law = RateLaw("exp", rate=2.0, log_values=True)
    y = law_log10(law, np.array([100.0, 200.0]), (100.0, -500.0))
    # log10 y drops by rate * dt / ln 10 = 200 / ln 10 over 100 steps, far below 1e-308;
    # measured relative deviation 1.1e-16
    np.testing.assert_allclose(y, [-500.0, -500.0 - 200.0 / LN10], rtol=5e-16)


def test_law_log10_of_an_additive_law_that_reaches_zero_is_nan():
    y = law_log10(RateLaw("linear", slope=-1.0), np.array([1.0, 2.0, 3.0]), (1.0, np.log10(1.5)))
    # measured: both exact
    np.testing.assert_allclose(y[0], np.log10(1.5), rtol=1e-15)
    np.testing.assert_allclose(y[1], np.log10(0.5), rtol=1e-15)
    assert np.isnan(y[2])

