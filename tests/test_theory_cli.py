"""``python -m theory``: files written, JSON output, exit codes and error messages."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from theory.families import make_family
from theory import AttentionProblem, solve_wsvm
from theory.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind, extra", [("equal", ["--d", "6"]), ("random", ["--d", "5"]),
                                         ("overparam", []), ("joint", ["--d", "4"])])
def test_random_writes_the_family_instance(tmp_path, kind, extra, capsys):
    out = tmp_path / "x.npz"
    rc = main(["random", "--kind", kind, "--n", "3", "--T", "3", "--seed", "5", *extra,
               "-o", str(out)])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    kw = {"d": int(extra[1])} if extra else {}
    ref = make_family(kind, n=3, T=3, seed=5, **kw)
    got = AttentionProblem.load(out)
    np.testing.assert_array_equal(got.X, ref.X)
    np.testing.assert_array_equal(got.y, ref.y)
    assert (got.z is None) == (ref.z is None)


@pytest.fixture
def instance(tmp_path):
    path = tmp_path / "inst.npz"
    make_family("equal", n=5, T=4, d=6, seed=1).save(path)
    return path


def test_svm_json_and_output_file(instance, tmp_path, capsys):
    out = tmp_path / "sol.npz"
    assert main(["svm", str(instance), "--json", "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    ref = solve_wsvm(AttentionProblem.load(instance))
    assert info["status"] == "optimal" and info["norm"] == "fro"
    np.testing.assert_allclose(info["norm_value"], ref.norm_value, rtol=1e-12)
    np.testing.assert_allclose(info["margin"], 1 / ref.norm_value, rtol=1e-12)
    assert info["support_tokens"] == ref.support_tokens()
    assert info["selection"] == ref.selection.tolist()
    with np.load(out) as f:
        np.testing.assert_allclose(f["W"], ref.W, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(f["support"], ref.support)
        np.testing.assert_allclose(f["dual"], ref.dual, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f["margins"], ref.margins, rtol=0, atol=1e-12)
    assert sorted(os.listdir(tmp_path)) == ["inst.npz", "sol.npz"]  # no temporary left over


def test_svm_text_summary_with_selection_and_nuclear(instance, capsys):
    p = AttentionProblem.load(instance)
    sel = (p.opt + 1) % p.T
    arg = ",".join(map(str, sel))
    assert main(["svm", str(instance), "--selection", arg, "--norm", "nuc"]) == 0
    text = capsys.readouterr().out
    ref = solve_wsvm(p, sel, norm="nuc")
    assert "W-SVM (nuc norm)" in text and "KKT residual" in text and "method cvxpy" in text
    assert f"{ref.norm_value:.6g}"[:6] in text
    for i, toks in enumerate(ref.support_tokens()):
        assert f"{i:8d}  {sel[i]:8d}  {toks if toks else '-'}" in text


def _infeasible(path):
    X = np.array([[[1.0, 0.0], [-1.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]])
    AttentionProblem(X, [1, -1], [1.0, 0.5], z=[[1.0, 0.0], [1.0, 0.0]]).save(path)


def _tied(path):
    X = np.array([[[1.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    AttentionProblem(X, [1, 1], [1.0, 0.0]).save(path)


@pytest.mark.parametrize("make, args, message", [
    (None, ["svm", "missing.npz"], "missing.npz: no such file"),
    (lambda p: p.write_text("not a zip"), ["svm", "{f}"], "not an .npz archive"),
    (lambda p: np.savez(p, X=np.zeros((2, 2, 2))), ["svm", "{f}"], "missing key"),
    (_infeasible, ["svm", "{f}"], r"infeasible: sequences \[0, 1\]"),
    (_tied, ["svm", "{f}"], "tied optimal token"),
    (_tied, ["svm", "{f}", "--selection", "0,x"], "comma-separated integers"),
    (_tied, ["svm", "{f}", "--selection", "0,5"], r"must lie in \[0, 2\)"),
    (None, ["random", "--kind", "equal", "--n", "1", "-o", "{f}"], "at least n = 2"),
])
def test_errors_exit_2_with_one_line(tmp_path, capsys, make, args, message):
    f = tmp_path / "f.npz"
    if make is not None:
        make(f)
    rc = main([a.format(f=f) for a in args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err)


def test_demo(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "status optimal" in out and "cross-check with cvxpy" in out
    assert "(global)" in out and "locally optimal selection(s)" in out


def _run(*args):
    return subprocess.run([sys.executable, "-m", "theory", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_subprocess_help_and_error(tmp_path):
    top = _run("--help")
    assert top.returncode == 0
    for cmd in ("svm", "random", "demo"):
        assert cmd in top.stdout
    svm = _run("svm", "--help")
    for opt in ("--norm", "--selection", "--method", "--tol", "--output", "--json"):
        assert opt in svm.stdout
    rnd = _run("random", "--help")
    for opt in ("--kind", "--n", "--T", "--d", "--seed", "--attention", "--output"):
        assert opt in rnd.stdout
    f = tmp_path / "inf.npz"
    _infeasible(f)
    bad = _run("svm", str(f))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: W-SVM (fro) of selection [0, 0] is infeasible")


def _complex(path):
    np.savez(path, X=np.ones((2, 2, 2)) * (1 + 1j), y=[1.0, 1.0], u=[1.0, 0.0])


@pytest.mark.parametrize("args, message", [
    (["svm", "{inst}", "-o", "{tmp}/missing/sol.npz"], "folder .*missing does not exist"),
    (["svm", "{inst}", "-o", "{tmp}"], "it is a folder; give a file name"),
    (["random", "--kind", "equal", "-o", "{tmp}/missing/x.npz"], "folder .*missing does not exist"),
    (["random", "--kind", "equal", "-o", "{tmp}"], "it is a folder"),
    (["svm", "{tmp}"], "is a folder, not an instance file"),
    (["svm", "{inst}", "--tol", "a"], "argument --tol: invalid float value: 'a'"),
    (["svm", "{inst}", "--tol", "2"], r"tol must be a number in \(0, 1\)"),
    (["svm", "{inst}", "--norm", "l1"], "argument --norm: invalid choice: 'l1'"),
    (["random", "--kind", "gauss", "-o", "{tmp}/x.npz"], "argument --kind: invalid choice"),
    (["random", "--kind", "equal", "--n", "0", "-o", "{tmp}/x.npz"], "must be a positive integer"),
    (["random", "--kind", "equal", "--d", "1", "-o", "{tmp}/x.npz"], "d must be at least 2"),
    (["random", "--kind", "equal", "--seed", "-1", "-o", "{tmp}/x.npz"], "negative"),
    ([], "the following arguments are required: COMMAND"),
])
def test_usage_and_output_errors_exit_2_with_one_line(instance, tmp_path, capsys, args, message):
    rc = main([a.format(inst=instance, tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err)
    assert sorted(os.listdir(tmp_path)) == ["inst.npz"]  # nothing written, no temporary


def test_usage_errors_exit_2(capsys):
    assert main(["svm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: python -m theory svm: ")


def test_complex_instance_is_refused(tmp_path):
    f = tmp_path / "c.npz"
    _complex(f)
    bad = _run("svm", str(f))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == (f"error: {f}: X must be real: it has entries with a nonzero "
                          "imaginary part\n")


def test_kind_choices_come_from_the_registry(monkeypatch, tmp_path, capsys):
    from theory import families

    monkeypatch.setitem(families.FAMILIES, "tiny", lambda n, T, seed: families.general_random(
        n=n, T=T, d=2, seed=seed))
    assert main(["random", "--kind", "tiny", "--n", "2", "--T", "2", "-o",
                 str(tmp_path / "t.npz")]) == 0
    assert AttentionProblem.load(tmp_path / "t.npz").d == 2
