"""Hostile inputs to sims (API, trajectories, files, command line): each gets a clear typed
error naming the problem, or an exact answer; never a silent inf/NaN or a bare traceback."""

import re

import numpy as np
import pytest

import sims
from sims.cli import main
from sims.data import equal_score


@pytest.fixture(scope="module")
def small():
    return equal_score(3, 4, 5, seed=0)


REF = np.eye(5)


# ------------------------------------------------------------------------ sims.run
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=True), TypeError, r"lr must be a real number, got bool True"),
    (dict(lr=np.True_), TypeError, r"lr must be a real number, got bool"),
    (dict(lr="0.1"), TypeError, r"lr must be a real number, got str '0.1'"),
    (dict(lr=0.1 + 0j), TypeError, r"lr must be a real number, got complex"),
    (dict(lr=[0.1]), TypeError, r"lr must be a real number, got list"),
    (dict(lr=float("nan")), ValueError, r"lr must be a finite positive number, got nan"),
    (dict(lr=float("inf")), ValueError, r"lr must be a finite positive number, got inf"),
    (dict(lr=-0.1), ValueError, r"lr must be a finite positive number, got -0.1"),
    (dict(lr=0), ValueError, r"lr must be a finite positive number, got 0"),
    (dict(steps=2.5), TypeError, r"steps must be an integer, got float 2.5"),
    (dict(steps=np.float64(3.0)), TypeError, r"steps must be an integer, got float"),
    (dict(steps=True), TypeError, r"steps must be an integer, got bool True"),
    (dict(steps="10"), TypeError, r"steps must be an integer, got str '10'"),
    (dict(steps=-1), ValueError, r"steps must be an integer >= 0, got -1"),
    (dict(method=None), TypeError, r"method must be a string"),
    (dict(method="NGD"), ValueError, r"unknown method 'NGD'"),
    (dict(param=1), TypeError, r"param must be a string"),
    (dict(loss=None), TypeError, r"loss must be a string"),
    (dict(normalize="Block"), ValueError, r"unknown normalize 'Block'"),
    (dict(record=True), TypeError, r"record must be 'log', 'all', an int or an array"),
    (dict(record=-5), ValueError, r"k >= 1, got -5"),
    (dict(record=[0.5, 1.0]), TypeError, r"1-d array of integers"),
    (dict(record=[[1, 2]]), TypeError, r"1-d array of integers"),
    (dict(num_records=1), ValueError, r"num_records must be an integer >= 2, got 1"),
    (dict(num_records=2.5), TypeError, r"num_records must be an integer, got float"),
    (dict(beta=1.0), ValueError, r"beta must lie in \[0, 1\), got 1.0"),
    (dict(beta=-0.1), ValueError, r"beta must lie in \[0, 1\)"),
    (dict(beta=float("nan")), ValueError, r"beta must lie in \[0, 1\), got nan"),
    (dict(beta="0.9"), TypeError, r"beta must be a real number, got str"),
    (dict(seed=-1), ValueError, r"seed must be an integer >= 0"),
    (dict(seed=1.5), TypeError, r"seed must be an integer, got float"),
    (dict(store_params="yes"), TypeError, r"store_params must be True, False or None"),
    (dict(W0=np.eye(5) * (1 + 1j)), TypeError, r"W0 must be a real numeric array, got dtype complex"),
    (dict(W0=np.full((5, 5), "a")), TypeError, r"W0 must be a real numeric array, got dtype <U1"),
    (dict(W0=np.full((5, 5), None)), TypeError, r"W0 must be a real numeric array, got dtype object"),
    (dict(W0=np.full((5, 5), np.inf)), ValueError, r"W0 contains 25 NaN or infinite entries"),
    (dict(W0=np.eye(4)), ValueError, r"W0 must have shape \(5, 5\), got \(4, 4\)"),
    (dict(reference=np.zeros((5, 5))), ValueError, r"reference must be nonzero"),
    (dict(reference=np.eye(5) * 1j), TypeError, r"reference must be a real numeric array"),
    (dict(reference=np.full((5, 5), np.nan)), ValueError, r"reference contains 25 NaN"),
])
def test_bad_run_arguments(small, kwargs, error, match):
    args = dict(method="ngd", steps=10, reference=REF)
    args.update(kwargs)
    method, steps = args.pop("method"), args.pop("steps")
    with pytest.raises(error, match=match):
        sims.run(small, method, steps, **args)


@pytest.mark.parametrize("problem, match", [
    (None, r"problem must be a theory.AttentionProblem, got NoneType"),
    ("abc", r"problem must be a theory.AttentionProblem, got str"),
    (np.zeros((3, 4, 5)), r"problem must be a theory.AttentionProblem, got ndarray"),
])
def test_run_needs_a_problem(problem, match):
    with pytest.raises(TypeError, match=match):
        sims.run(problem, "ngd", 5, reference=REF)


@pytest.mark.parametrize("method, kwargs, iteration", [
    ("ngd", dict(W0=np.full((5, 5), 1e308)), 0),  # ||W|| = 5e308 is beyond float64
    ("gd", dict(W0=np.full((5, 5), -1e308)), 0),
    ("polyak", dict(W0=np.eye(5) * 1e150), 1),  # the Polyak step blows up where g vanishes
])
def test_leaving_the_float64_range_raises_naming_the_iteration(small, method, kwargs, iteration):
    with pytest.raises(FloatingPointError, match=rf"at iteration {iteration}: the parameters left"):
        sims.run(small, method, 20, reference=REF, record="all", **kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(lr=1e300),  # W jumps to about 1e298 in one step
    dict(lr=1e308, W0=np.eye(5)),
    dict(W0=np.full((5, 5), 1e300)),
    dict(W0=np.full((5, 5), 1e307)),  # ||W||_F = 5e307: the squares overflow, the norm does not
])
def test_huge_but_representable_parameters_give_exact_metrics(small, kwargs):
    tr = sims.run(small, "gd", 5, reference=REF, record="all", store_params=True, **kwargs)
    peak = np.maximum(np.abs(tr.W_hist).max(axis=(1, 2)), 1e-300)  # W_0 may be 0
    exact = peak * np.linalg.norm(tr.W_hist / peak[:, None, None], axis=(1, 2))
    np.testing.assert_allclose(tr.norm, exact, rtol=1e-15)
    assert tr.norm.max() > 1e298
    np.testing.assert_allclose(tr.corr, tr.corr_with(REF), rtol=0, atol=1e-15)
    # the step from a saturated point is e^{log_step_length}, an underflow, not a missing value
    assert np.all(np.isfinite(tr.log_step_length))


# ------------------------------------------------------------------ options, sweeps
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(methods=["ngd"], lrs=None, steps=None), TypeError, r"run_many needs steps"),
    (dict(methods=[sims.RunOptions("ngd")], lrs=[0.1], steps=5), TypeError, r"give no lrs"),
    (dict(methods=[sims.RunOptions("ngd"), "gd"], lrs=None, steps=5), TypeError,
     r"all strings or all RunOptions"),
    (dict(methods="ngd", lrs=[0.1], steps=5, on_error="ignore"), ValueError,
     r"on_error must be 'raise' or 'return', got 'ignore'"),
    (dict(methods=sims.RunOptions("ngd"), lrs=None, steps=5, loss="exp"), TypeError,
     r"settings given both in RunOptions and as keywords: loss"),
])
def test_bad_sweep_arguments(small, kwargs, error, match):
    with pytest.raises(error, match=match):
        sims.run_many([small], references=[REF], **kwargs)


def test_run_rejects_options_with_keywords(small):
    with pytest.raises(TypeError, match=r"both in RunOptions and as keywords: lr, record"):
        sims.run(small, sims.RunOptions("ngd"), 5, lr=0.3, record=2, reference=REF)


# -------------------------------------------------------------- trajectories, files
@pytest.fixture(scope="module")
def traj(small):
    return sims.run(small, "ngd", 20, reference=REF, record=5, store_params=False)


@pytest.mark.parametrize("reference, error, match", [
    (np.eye(5), ValueError, r"did not store its iterates \(W_hist\); run it with store_params=True"),
    (np.eye(4), ValueError, r"reference must have shape \(5, 5\), got \(4, 4\)"),
    (np.ones(5), ValueError, r"reference must have shape \(5, 5\), got \(5,\)"),
    (np.full((5, 5), "x"), TypeError, r"reference must be a real array, got dtype <U1"),
])
def test_bad_after_the_fact_references(traj, reference, error, match):
    with pytest.raises(error, match=match):
        traj.corr_with(reference)


@pytest.mark.parametrize("reference", [np.zeros((5, 5)), np.full((5, 5), np.inf)])
def test_degenerate_after_the_fact_references(small, reference):
    tr = sims.run(small, "ngd", 5, reference=REF, store_params=True)
    with pytest.raises(ValueError, match=r"reference must be finite and nonzero"):
        tr.dist_with(reference)


@pytest.mark.parametrize("name, error, match", [
    ("missing/traj.npz", FileNotFoundError, r"folder .*missing does not exist"),
    (".", IsADirectoryError, r"it is a folder"),
    ("traj.txt", ValueError, r"must end in \.npz or \.csv"),
])
def test_save_to_bad_paths(traj, tmp_path, name, error, match):
    with pytest.raises(error, match=match):
        traj.save(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_load_of_a_foreign_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"is not a saved sims.Trajectory v1 file"):
        sims.Trajectory.load(path)


# ---------------------------------------------------------------------- command line
CLI_BASE = ["run", "--family", "equal", "--n", "3", "--T", "4", "--d", "5", "--steps", "5"]


@pytest.mark.parametrize("extra, output, message", [
    ([], "missing/x.csv", r"^error: cannot write .*missing/x\.csv: folder .* does not exist$"),
    ([], ".", r"^error: cannot write .*: it is a folder; give a file name$"),
    ([], "x.txt", r"^error: --output must end in \.csv or \.npz, got '.*x\.txt'$"),
    (["--lr", "nan"], "x.csv", r"^error: lr must be a finite positive number, got nan$"),
    (["--lr", "0"], "x.csv", r"^error: lr must be a finite positive number, got 0\.0$"),
    (["--steps", "-1"], "x.csv", r"^error: steps must be an integer >= 0, got -1$"),
    (["--steps", "2.5"], "x.csv", r"^error: argument --steps: invalid int value: '2\.5'$"),
    (["--beta", "1"], "x.csv", r"^error: beta must lie in \[0, 1\), got 1\.0$"),
    (["--family", "bogus"], "x.csv", r"^error: argument --family: invalid choice: 'bogus'"),
    (["--method", "adam"], "x.csv", r"^error: argument --method: invalid choice: 'adam'"),
    (["--init", "random", "--init-scale", "nan"], "x.csv", r"^error: W0 contains 25 NaN"),
    (["--num-records", "1"], "x.csv", r"^error: num_records must be an integer >= 2, got 1$"),
    (["--record", "0"], "x.csv", r"^error: argument --record: --record every k steps needs k >= 1"),
    (["--init", "random", "--init-scale", "1e308"], "x.csv",  # ||W0|| beyond float64
     r"^error: ngd \(lr=0\.1\) reached a non-finite .* at iteration 0: "),
])
def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys, extra, output, message):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(CLI_BASE + extra + ["-o", str(tmp_path / output)]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.search(message, err[0]), err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
