import numpy as np
import pytest

from theory import AttentionProblem, TieError, loss_value
from theory.families import FAMILIES, make_family


def _rand(n=3, T=4, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, T, d)), rng.choice([-1.0, 1.0], n), rng.standard_normal(d)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y, u: (X[0], y, u), "X must be 3-dimensional"),
        (lambda X, y, u: (X[:1], y[:1], u), "at least n = 2"),
        (lambda X, y, u: (X[:, :1], y, u), "at least T = 2"),
        (lambda X, y, u: (X, y[:2], u), r"y must have shape \(3,\)"),
        (lambda X, y, u: (X, y * 2, u), "labels must be -1 or \\+1"),
        (lambda X, y, u: (X, y, u[:3]), r"u must have shape \(5,\)"),
        (lambda X, y, u: (np.where(X > 1, np.nan, X), y, u), "X contains .* NaN"),
        (lambda X, y, u: (X, y, np.full(5, np.inf)), "u contains 5 NaN or infinite"),
    ],
)
def test_validation_messages(mutate, match):
    X, y, u = _rand()
    with pytest.raises(ValueError, match=match):
        AttentionProblem(*mutate(X, y, u))


def test_cross_attention_query_shape():
    X, y, u = _rand()
    with pytest.raises(ValueError, match=r"z must have shape \(3, 5\)"):
        AttentionProblem(X, y, u, np.ones((3, 4)))


@pytest.mark.parametrize("seed", range(3))
def test_scores_opt_and_loss_inf(seed):
    X, y, u = _rand(seed=seed)
    p = AttentionProblem(X, y, u)
    expected = np.einsum("i,itd,d->it", y, X, u)
    np.testing.assert_allclose(p.scores, expected, rtol=1e-14)
    np.testing.assert_array_equal(p.opt, expected.argmax(1))
    best = expected.max(1)
    np.testing.assert_allclose(p.loss_inf, np.mean(np.log1p(np.exp(-best))), rtol=1e-13)
    np.testing.assert_allclose(p.loss_inf_for("exp"), np.mean(np.exp(-best)), rtol=1e-13)
    np.testing.assert_array_equal(p.queries, X[:, 0])


def test_tie_error_lists_sequences():
    X, y, u = _rand()
    X[1, 2] = X[1, 3] = X[1, int(np.argmax(y[1] * X[1] @ u))]  # duplicate the best token
    p = AttentionProblem(X, y, u)
    with pytest.raises(TieError, match=r"1 sequence\(s\) .*: 1 ") as info:
        p.opt
    assert info.value.sequences == (1,)
    assert isinstance(info.value, ValueError)


def test_selection_validation():
    p = AttentionProblem(*_rand())
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        p.check_selection([0, 4, 1])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        p.check_selection([0, 1])


def test_save_load_roundtrip(tmp_path):
    X, y, u = _rand()
    z = np.ones((3, 5))
    for p in (AttentionProblem(X, y, u), AttentionProblem(X, y, u, z)):
        p.save(tmp_path / "p.npz")
        q = AttentionProblem.load(tmp_path / "p.npz")
        for k in ("X", "y", "u", "z"):
            a, b = getattr(p, k), getattr(q, k)
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)
    np.savez(tmp_path / "bad.npz", X=X, y=y)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['u'\]"):
        AttentionProblem.load(tmp_path / "bad.npz")


def test_logistic_loss_is_stable():
    x = np.array([-800.0, 0.0, 800.0])
    v = loss_value(x)
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(v, [800.0, np.log(2), np.exp(-800.0)], rtol=1e-14)


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_families_are_seeded_and_tie_free(name, seed):
    a, b = make_family(name, seed=seed), make_family(name, seed=seed)
    np.testing.assert_array_equal(a.X, b.X)
    assert a.opt.shape == (a.n,)  # raises TieError on a tie


def test_equal_score_structure():
    p = make_family("equal", n=5, T=6, d=7, seed=3)
    g = p.scores
    np.testing.assert_array_equal(g.max(1), 1.0)
    np.testing.assert_array_equal(np.sort(g, 1)[:, :-1], 0.0)


@pytest.mark.parametrize("make, exc, match", [
    (lambda X, y, u: (X + 1j, y, u), TypeError, "X must be real: it has entries with a nonzero "
                                                 "imaginary part"),
    (lambda X, y, u: (X > 0, y, u), TypeError, "X must be a real numeric array, got booleans"),
    (lambda X, y, u: (X.astype(str), y, u), TypeError, "X must be a real numeric array, got "
                                                        "strings"),
    (lambda X, y, u: (X, y.astype(object), np.array([1, 2, "a", 4, 5], dtype=object)),
     TypeError, "u must be a real numeric array, got an entry 'a' of type str"),
    (lambda X, y, u: (None, y, u), TypeError, "X must be a real numeric array, got an entry None"),
    (lambda X, y, u: (X, y, np.full(5, 10**400, dtype=object)), ValueError,
     "u has entries outside the float64 range"),
    (lambda X, y, u: (X * 1e300, y, u * 1e300), ValueError, "token scores .* overflow float64"),
])
def test_hostile_arrays(make, exc, match):
    with pytest.raises(exc, match=match):
        AttentionProblem(*make(*_rand()))


def test_complex_with_zero_imaginary_part_is_exact():
    X, y, u = _rand()
    p = AttentionProblem(X + 0j, y, u)
    np.testing.assert_array_equal(p.X, X)
    assert p.X.dtype == np.float64


@pytest.mark.parametrize("rtol, exc, match", [
    ("a", TypeError, "tie_rtol must be a real number, got 'a'"),
    (True, TypeError, "tie_rtol must be a real number, got True"),
    (-1.0, ValueError, "tie_rtol must be a finite nonnegative number"),
    (float("inf"), ValueError, "tie_rtol must be a finite nonnegative number"),
])
def test_tie_rtol_checked(rtol, exc, match):
    with pytest.raises(exc, match=match):
        AttentionProblem(*_rand(), tie_rtol=rtol)


def test_tie_message_states_the_rule():
    # scores 1e-10 apart at scale 1e-3: tied under the absolute tolerance 1e-9 that applies
    # below 1, although their relative gap is 1e-7
    X = np.zeros((2, 2, 1))
    X[:, 0, 0], X[:, 1, 0] = 1e-3, 1e-3 - 1e-10
    p = AttentionProblem(X, [1, 1], [1.0])
    with pytest.raises(TieError, match=r"within tie_rtol \* max\(1, \|top score\|\), tie_rtol "
                                       r"= 1e-09: absolute below 1, relative above"):
        p.opt
    np.testing.assert_array_equal(AttentionProblem(X * 1e4, [1, 1], [1.0]).opt, [0, 0])


@pytest.mark.parametrize("sel, exc, match", [
    (["0", "1", "2"], TypeError, "got strings"),
    ([True, False, True], TypeError, "got booleans"),
    ([0j, 1, 2], TypeError, "got complex numbers"),
    ([0, 1, np.nan], ValueError, "integer token indices"),
    ([0, 1, 1e300], ValueError, r"lie in \[0, 4\); sequences \[2\] have \[1e\+300\]"),
    ("012", TypeError, "got strings"),
    (np.zeros((3, 1), int), ValueError, r"shape \(3,\), got \(3, 1\)"),
])
def test_hostile_selections(sel, exc, match):
    with pytest.raises(exc, match=match):
        AttentionProblem(*_rand()).check_selection(sel)


@pytest.mark.parametrize("target, exc, match", [
    ("missing/p.npz", FileNotFoundError, "folder .*missing does not exist"),
    (".", IsADirectoryError, "it is a folder"),
])
def test_save_errors(tmp_path, target, exc, match):
    with pytest.raises(exc, match=match):
        AttentionProblem(*_rand()).save(tmp_path / target)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
