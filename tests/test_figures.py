"""The figure pipeline: ``python -m paper_figs --quick`` writes every PNG and the CSV behind it.

One quick rebuild of all figures (module fixture, real-data figures trained on the
embedded data in a temporary runs folder), then checks on what it wrote: the PNG
decodes at the expected size, every CSV has its columns, numeric cells are finite,
empty cells appear only where the row says why, and band tables satisfy
``lo <= mean <= hi``. The plotted claims themselves are asserted by the rates suite.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from paper_figs.common import FIGURES, seed_band, write_csv  # noqa: E402

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
    }


def _run(*args, timeout=600):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "paper_figs", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    runs = tmp_path_factory.mktemp("runs")  # empty: the real-data figures train now
    proc = _run("--quick", "--out", out, "--runs", runs)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    return out, proc.stdout


def test_registry_matches_expectations():
    assert set(EXPECTED) == set(FIGURES)


def test_printed_list_is_what_was_written(quick):
    out, stdout = quick
    printed = {Path(line.strip()) for line in stdout.splitlines() if line.startswith("  ")}
    on_disk = {p for p in out.iterdir()}
    expected = {out / f for files in EXPECTED.values() for f in files} | \
               {out / f"{name}.png" for name in EXPECTED}
    assert printed == on_disk == expected, (printed ^ expected, on_disk ^ expected)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_png_decodes(quick, name):
    out, _ = quick
    img = mpimg.imread(out / f"{name}.png")
    # 8 x 5 inches at 150 dpi, as the README gallery expects
    assert img.shape[2] in (3, 4)
    np.testing.assert_allclose(img.shape[:2], (750, 1200), atol=2)
    assert img[..., :3].std() > 0.05, "blank image"


@pytest.mark.parametrize("name, filename",
                         [(n, f) for n, files in sorted(EXPECTED.items()) for f in files])
def test_csv_columns_and_values(quick, name, filename):
    out, _ = quick
    columns, numeric, may_be_empty = EXPECTED[name][filename]
    with open(out / filename, newline="") as f:
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


def test_infeasible_instances_are_reported_not_counted(quick):
    out, _ = quick
    with open(out / "param_w_vs_kq.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # d = 2 < max(T - 1, n): some instances of the quick sweep are infeasible, and they
    # carry no measurement at all
    bad = [r for r in rows if r["status"] == "infeasible"]
    assert bad and all(r["gap_W_fro"] == "" and r["rank_nuc"] == "" for r in bad)
    ok = [r for r in rows if r["status"] != "infeasible"]
    assert ok and all(r["gap_W_fro"] != "" for r in ok)


def test_only_rebuilds_the_named_figure(tmp_path):
    proc = _run("--quick", "--only", "global_vs_local", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_vs_local.csv",
                                                          "global_vs_local.png"]


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
