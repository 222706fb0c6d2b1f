"""Hostile inputs to theory and its command line: every case ends in a typed error with a clear
message, or in the exact answer."""

import re

import numpy as np
import pytest

from theory import (AttentionProblem, InfeasibleError, TieError, is_feasible, is_locally_optimal,
                    locally_optimal_selections, make_family, solve_decoder_svm, solve_joint_wsvm,
                    solve_wsvm)
from theory.cli import main


def base():
    """Cross-attention, z_i = e_1: constraints (x_sel - x_t) . W[:, 0] >= 1; u = e_2."""
    X = np.array([[[1.0, 1.0], [-1.0, 0.0]], [[4.0, 0.0], [0.0, 1.0]]])
    return X, np.array([1.0, 1.0]), np.array([0.0, 1.0]), np.array([[1.0, 0.0], [1.0, 0.0]])


def problem(**kw):
    X, y, u, z = base()
    return AttentionProblem(**{**dict(X=X, y=y, u=u, z=z), **kw})


X0, Y0, U0, Z0 = base()

ERRORS = [
    # --- AttentionProblem: types
    ("X None", lambda: problem(X=None), TypeError, "X must be a real numeric array, got an entry "
                                                   "None"),
    ("X complex", lambda: problem(X=X0 * (1 + 2j)), TypeError, "X must be real"),
    ("z complex", lambda: problem(z=Z0 + 1e-300j), TypeError, "z must be real"),
    ("X bool", lambda: problem(X=X0 > 0), TypeError, "got booleans"),
    ("y bool", lambda: problem(y=np.array([True, True])), TypeError, "y must be .* got booleans"),
    ("X strings", lambda: problem(X=X0.astype(str)), TypeError, "got strings"),
    ("X bytes", lambda: problem(X=X0.astype(bytes)), TypeError, "got bytes"),
    ("X datetime", lambda: problem(X=X0.astype("datetime64[s]")), TypeError, "dtype datetime64"),
    ("u object str", lambda: problem(u=np.array([0.0, "1"], dtype=object)), TypeError,
     "u must be a real numeric array, got an entry '1' of type str"),
    ("X ragged", lambda: problem(X=[[[1.0, 1.0], [1.0]], [[1.0, 1.0], [1.0, 1.0]]]), ValueError,
     "X must be a rectangular numeric array"),
    ("tie_rtol str", lambda: problem(tie_rtol="a"), TypeError, "tie_rtol must be a real number"),
    ("tie_rtol None", lambda: problem(tie_rtol=None), TypeError, "tie_rtol must be a real"),
    # --- AttentionProblem: values
    ("X inf", lambda: problem(X=np.full_like(X0, np.inf)), ValueError,
     "X contains 8 NaN or infinite"),
    ("X 1e400 ints", lambda: problem(X=np.full((2, 2, 2), 10**400, dtype=object)), ValueError,
     "X has entries outside the float64 range"),
    ("longdouble beyond float64", lambda: problem(u=np.array([0, np.longdouble("1e4000")])),
     ValueError, r"u contains 1 NaN or infinite entries \(or values outside the float64 range"),
    ("scores overflow", lambda: problem(X=X0 * 1e200, u=U0 * 1e200), ValueError,
     "token scores .* overflow float64"),
    ("labels 0", lambda: problem(y=[0, 1]), ValueError, r"labels must be -1 or \+1"),
    ("X 2-D", lambda: problem(X=X0[0]), ValueError, "X must be 3-dimensional"),
    ("z wrong shape", lambda: problem(z=Z0[:, :1]), ValueError, r"z must have shape \(2, 2\)"),
    ("one sequence", lambda: problem(X=X0[:1], y=Y0[:1], z=Z0[:1]), ValueError, "at least n = 2"),
    # --- selections
    ("selection strings", lambda: solve_wsvm(problem(), ["0", "1"]), TypeError, "got strings"),
    ("selection bools", lambda: solve_wsvm(problem(), [True, False]), TypeError, "got booleans"),
    ("selection object", lambda: solve_wsvm(problem(), np.array([0, None])), TypeError,
     "dtype object"),
    ("selection complex", lambda: solve_wsvm(problem(), [0j, 1]), TypeError, "complex numbers"),
    ("selection fraction", lambda: solve_wsvm(problem(), [0.5, 1]), ValueError,
     "integer token indices"),
    ("selection inf", lambda: solve_wsvm(problem(), [np.inf, 1]), ValueError,
     "integer token indices"),
    ("selection negative", lambda: solve_wsvm(problem(), [-1, 1]), ValueError,
     r"lie in \[0, 2\); sequences \[0\] have \[-1\]"),
    ("selection huge", lambda: solve_wsvm(problem(), [2**62, 1]), ValueError, r"lie in \[0, 2\)"),
    ("selection long", lambda: solve_wsvm(problem(), [0, 1, 0]), ValueError,
     r"shape \(2,\), got \(3,\)"),
    # --- solvers
    ("problem None", lambda: solve_wsvm(None), TypeError, "problem must be an AttentionProblem"),
    ("problem array", lambda: solve_decoder_svm(X0), TypeError, "got ndarray"),
    ("joint problem dict", lambda: solve_joint_wsvm({}), TypeError, "got dict"),
    ("tol str", lambda: solve_wsvm(problem(), tol="a"), TypeError, "tol must be a real number"),
    ("tol None", lambda: solve_decoder_svm(problem(), tol=None), TypeError, "tol must be a real"),
    ("tol 1", lambda: solve_wsvm(problem(), tol=1), ValueError,
     r"tol must be a number in \(0, 1\)"),
    ("tol nan", lambda: solve_joint_wsvm(problem(), tol=float("nan")), ValueError,
     "tol must be a number"),
    ("norm None", lambda: solve_wsvm(problem(), norm=None), ValueError, "unknown norm None"),
    ("norm array", lambda: solve_wsvm(problem(), norm=np.array(["fro"])), ValueError,
     "unknown norm"),
    ("method int", lambda: solve_wsvm(problem(), method=1), ValueError, "unknown method 1"),
    ("active-set nuc", lambda: solve_joint_wsvm(problem(), norm="nuc", method="active-set"),
     ValueError, "Frobenius norm only"),
    ("decoder wrong type", lambda: solve_joint_wsvm(problem(), decoder="u"), TypeError,
     "decoder must be a DecoderSolution, got str"),
    ("tied opt", lambda: solve_wsvm(problem(u=[1.0, 0.0], X=np.array(
        [[[1.0, 0.0], [1.0, 5.0]], [[2.0, 0.0], [0.0, 0.0]]]))), TieError,
     "absolute below 1, relative above"),
    ("infeasible", lambda: solve_wsvm(problem(X=np.array(
        [[[1.0, 0.0], [-1.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]]), u=[1.0, 0.5]), [0, 0]),
     InfeasibleError, r"infeasible: sequences \[0, 1\]"),
    ("zero query", lambda: solve_wsvm(problem(z=[[1.0, 0.0], [0.0, 0.0]])), InfeasibleError,
     "seq 1 token 0 is zero"),
    ("extreme scale", lambda: solve_wsvm(problem(X=X0 * 1e200, u=U0 * 1e-200, z=Z0 * 1e200)),
     ValueError, "outside the float64 range; rescale"),
    # --- selection search
    ("is_feasible rows float", lambda: is_feasible(problem(), [0], rows=[0.0]), ValueError,
     "rows must be a nonempty 1-D array"),
    ("is_feasible rows empty", lambda: is_feasible(problem(), [], rows=[]), ValueError,
     "rows must be a nonempty"),
    ("is_locally_optimal None", lambda: is_locally_optimal(None, [0, 0]), TypeError,
     "problem must be an AttentionProblem"),
    ("max_count 0", lambda: locally_optimal_selections(problem(), max_count=0), ValueError,
     "max_count must be a positive integer"),
    ("limit str", lambda: locally_optimal_selections(problem(), limit="9"), ValueError,
     "limit must be a positive integer, got '9'"),
    ("limit exceeded", lambda: locally_optimal_selections(problem(), limit=3), ValueError,
     r"T\^n = 2\^2 = 4 selections exceeds limit=3"),
    # --- families
    ("family name", lambda: make_family("gauss"), ValueError, "unknown family 'gauss'"),
    ("family name None", lambda: make_family(None), ValueError, "unknown family None"),
    ("family n float", lambda: make_family("equal", n=2.5), TypeError,
     "n must be an integer, got 2.5"),
    ("family T bool", lambda: make_family("random", T=True), TypeError, "T must be an integer"),
    ("family d small", lambda: make_family("equal", d=1), ValueError, "d must be at least 2"),
    ("family noise", lambda: make_family("equal", noise=float("nan")), ValueError,
     "noise must be a finite positive number"),
    ("family signal str", lambda: make_family("joint", signal="2"), TypeError,
     "signal must be a real number"),
    ("family opt_position", lambda: make_family("joint", T=3, opt_position=3), ValueError,
     r"opt_position must lie in \[0, 3\)"),
    ("family opt_position str", lambda: make_family("equal", opt_position="first"), ValueError,
     "opt_position must be 'random' or a token index"),
    ("family attention", lambda: make_family("random", attention="both"), ValueError,
     "attention must be 'self' or 'cross'"),
    ("family unknown kwarg", lambda: make_family("random", D=3), TypeError,
     "unexpected keyword argument 'D'"),
    # --- files
    ("save into missing folder", lambda: problem().save("/nonexistent-folder/p.npz"),
     FileNotFoundError, "folder /nonexistent-folder does not exist"),
    ("save onto folder", lambda: problem().save("/"), IsADirectoryError, "it is a folder"),
    ("save to None", lambda: problem().save(None), TypeError, "output path must be a string"),
    ("load missing", lambda: AttentionProblem.load("/nonexistent-folder/p.npz"),
     FileNotFoundError, "No such file"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- exact answers
def _same_solution(a, b, scale=1.0):
    np.testing.assert_array_equal(a.W, b.W * scale)
    np.testing.assert_array_equal(a.selection, b.selection)
    np.testing.assert_array_equal(a.support, b.support)


EXACT = [
    ("complex with zero imaginary part", lambda: solve_wsvm(problem(X=X0 + 0j)), 1.0),
    ("integer tokens", lambda: solve_wsvm(problem(X=X0.astype(np.int64))), 1.0),
    ("float32 tokens", lambda: solve_wsvm(problem(X=X0.astype(np.float32))), 1.0),
    ("object array of numbers", lambda: solve_wsvm(problem(X=X0.astype(object))), 1.0),
    ("integral float selection", lambda: solve_wsvm(problem(), [0.0, 1.0]), 1.0),
    ("unsigned selection", lambda: solve_wsvm(problem(), np.array([0, 1], np.uint8)), 1.0),
    # powers of two scale the data exactly, so W scales exactly (W_mm(cX) = W_mm(X) / c for a
    # fixed cross-attention query), even at 2**+-900
    ("tokens times 2**900", lambda: solve_wsvm(problem(X=X0 * 2.0**900, u=U0 * 2.0**-900)),
     2.0**-900),
    ("tokens times 2**-900", lambda: solve_wsvm(problem(X=X0 * 2.0**-900, u=U0 * 2.0**900)),
     2.0**900),
    ("queries times 2**-1000", lambda: solve_wsvm(problem(z=Z0 * 2.0**-1000)), 2.0**1000),
]


@pytest.mark.parametrize("call, scale", [c[1:] for c in EXACT], ids=[c[0] for c in EXACT])
def test_exact_answer(call, scale):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # multipliers outside float64: scaled
        sol = call()
    _same_solution(sol, solve_wsvm(problem()), scale)
    assert sol.status == "optimal"


# ---------------------------------------------------------------------------- command line
def _complex_file(path):
    np.savez(path, X=X0 * (1 + 1j), y=Y0, u=U0, z=Z0)


def _pickled_file(path):
    np.savez(path, X=np.array([[[None]]], dtype=object), y=Y0, u=U0)


def _zero_d_file(path):
    np.savez(path, X=np.float64(1.0), y=Y0, u=U0)


CLI = [
    ("svm -o into missing folder", None, ["svm", "{ok}", "-o", "{tmp}/no/sol.npz"],
     "folder .*/no does not exist"),
    ("svm -o onto folder", None, ["svm", "{ok}", "-o", "{tmp}"], "it is a folder"),
    ("svm complex instance", _complex_file, ["svm", "{f}"], "X must be real"),
    ("svm object arrays", _pickled_file, ["svm", "{f}"], "allow_pickle=False"),
    ("svm 0-d X", _zero_d_file, ["svm", "{f}"], "X must be 3-dimensional"),
    ("svm instance is a folder", None, ["svm", "{tmp}"], "is a folder"),
    ("svm --selection strings", None, ["svm", "{ok}", "--selection", "a,b"],
     "comma-separated integers"),
    ("svm --selection too long", None, ["svm", "{ok}", "--selection", "0,1,0"],
     r"shape \(2,\)"),
    ("svm --tol inf", None, ["svm", "{ok}", "--tol", "inf"], "tol must be a number"),
    ("svm --method", None, ["svm", "{ok}", "--method", "newton"], "invalid choice: 'newton'"),
    ("random --T x", None, ["random", "--kind", "equal", "--T", "x", "-o", "{tmp}/x.npz"],
     "must be a positive integer, got 'x'"),
    ("random --n 1", None, ["random", "--kind", "joint", "--n", "1", "-o", "{tmp}/x.npz"],
     "at least n = 2"),
    ("random -o missing folder", None, ["random", "--kind", "equal", "-o", "{tmp}/no/x.npz"],
     "does not exist"),
    ("unknown command", None, ["solve"], "invalid choice: 'solve'"),
]


@pytest.mark.parametrize("make, args, message", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_error(tmp_path, capsys, make, args, message):
    ok = tmp_path / "ok.npz"
    problem().save(ok)
    f = tmp_path / "f.npz"
    if make is not None:
        make(f)
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main([a.format(ok=ok, f=f, tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written or left
