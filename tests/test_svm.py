"""W-SVM and decoder SVM: KKT conditions checked from the raw data, closed forms, agreement
between methods, infeasibility certificates and input errors."""

import warnings

import numpy as np
import pytest

from theory import (
    AttentionProblem,
    InfeasibleError,
    SolverError,
    SVMSolution,
    TieError,
    is_feasible,
    solve_decoder_svm,
    solve_wsvm,
)
from theory.families import make_family

# Small feasible instances of every docs/theory.md §7 family (d^2 well above the n (T - 1)
# constraints).
FAMILY_CASES = [
    ("equal", dict(n=6, T=8, d=10)),
    ("overparam", dict(n=4, T=4)),
    ("random", dict(n=4, T=4, d=8)),
    ("joint", dict(n=6, T=3, d=8)),
    ("equal", dict(n=5, T=4, d=6, attention="cross")),
]
SEEDS = range(4)


def constraint_matrices(problem, sel):
    """A[i, t] = (x_{i,sel_i} - x_{i,t}) z_i^T built from the raw data, shape (n, T, d, d)."""
    X = problem.X
    z = X[:, 0] if problem.z is None else problem.z
    diff = X[np.arange(problem.n), sel][:, None, :] - X
    return diff[..., :, None] * z[:, None, None, :]


def check_kkt(problem, sol, norm="fro", rtol=1e-8):
    """Independent KKT check of a W-SVM solution (docs/theory.md §2)."""
    sel = np.asarray(sol.selection)
    A = constraint_matrices(problem, sel)
    n, T = problem.n, problem.T
    mask = np.ones((n, T), bool)
    mask[np.arange(n), sel] = False
    margins = np.einsum("itab,ab->it", A, sol.W)
    np.testing.assert_allclose(sol.margins[mask], margins[mask], rtol=1e-9, atol=1e-9)
    assert np.all(np.isnan(sol.margins[~mask])) and np.all(np.isnan(sol.dual[~mask]))
    # primal feasibility
    assert margins[mask].min() >= 1 - rtol
    # dual feasibility
    dual = sol.dual[mask]
    assert np.all(dual >= 0)
    # complementary slackness (relative to the scale of the multipliers)
    assert np.max(dual * np.abs(margins[mask] - 1)) <= rtol * max(dual.max(), 1e-300)
    G = np.einsum("it,itab->ab", np.where(mask, sol.dual, 0.0), A)
    if norm == "fro":
        # stationarity of 0.5 ||W||^2: W = sum dual * A, hence sum dual = ||W||^2
        np.testing.assert_allclose(sol.W, G, rtol=0, atol=rtol * np.linalg.norm(sol.W))
        np.testing.assert_allclose(dual.sum(), np.sum(sol.W**2), rtol=rtol)
        np.testing.assert_allclose(sol.norm_value, np.linalg.norm(sol.W), rtol=1e-12)
    else:
        # G must be a subgradient of the nuclear norm at W: ||G||_2 <= 1 and <G, W> = ||W||_*
        nuc = np.linalg.svd(sol.W, compute_uv=False).sum()
        assert np.linalg.norm(G, 2) <= 1 + 1e-6
        np.testing.assert_allclose(np.vdot(G, sol.W), nuc, rtol=1e-6)
        np.testing.assert_allclose(sol.norm_value, nuc, rtol=1e-12)
    np.testing.assert_array_equal(sol.support, mask & (margins <= 1 + 1e-6))
    assert sol.kkt_residual <= 10 * rtol and sol.status == "optimal"


# ------------------------------------------------------------------ KKT + methods agree
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("family, kw", FAMILY_CASES)
def test_kkt_and_methods_agree(family, kw, seed):
    p = make_family(family, seed=seed, **kw)
    fast = solve_wsvm(p, method="active-set")
    ref = solve_wsvm(p, method="cvxpy")
    check_kkt(p, fast, rtol=1e-10)
    check_kkt(p, ref, rtol=1e-8)
    assert fast.method == "active-set" and ref.method.startswith("cvxpy")
    np.testing.assert_array_equal(fast.selection, p.opt)
    np.testing.assert_allclose(ref.W, fast.W, rtol=0, atol=1e-6 * np.linalg.norm(fast.W))
    np.testing.assert_allclose(ref.norm_value, fast.norm_value, rtol=1e-6)
    assert solve_wsvm(p).method == "active-set"  # auto


@pytest.mark.parametrize("seed", SEEDS)
def test_arbitrary_selection(seed):
    # d >= n T: every selection is feasible
    p = make_family("overparam", n=4, T=5, seed=seed)
    sel = np.random.default_rng(seed).integers(0, p.T, p.n)
    sol = solve_wsvm(p, sel)
    check_kkt(p, sol, rtol=1e-10)
    np.testing.assert_array_equal(sol.selection, sel)
    ref = solve_wsvm(p, sel, method="cvxpy")
    np.testing.assert_allclose(ref.W, sol.W, rtol=0, atol=1e-6 * np.linalg.norm(sol.W))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("attention", ["self", "cross"])
def test_working_set_path_large(seed, attention):
    # 3000 constraints: exercises the cutting-plane loop and the final polish
    p = make_family("equal", n=200, T=16, d=32, seed=seed, opt_position=0, attention=attention)
    sol = solve_wsvm(p)
    check_kkt(p, sol, rtol=1e-10)
    assert sol.support.sum() > p.n  # not a trivial one-constraint-per-sequence solution


@pytest.mark.parametrize("seed", range(3))
def test_duplicated_sequences(seed):
    # identical constraints make the restricted Gram matrix singular
    p = make_family("random", n=4, T=4, d=8, seed=seed)
    twice = AttentionProblem(np.concatenate([p.X, p.X]), np.concatenate([p.y, p.y]), p.u)
    sol = solve_wsvm(twice)
    check_kkt(twice, sol, rtol=1e-10)
    np.testing.assert_allclose(sol.W, solve_wsvm(p).W, rtol=0, atol=1e-10 * sol.norm_value)


# ------------------------------------------------------------------------ closed forms
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("copy", ["scaled", "duplicate"])
def test_single_active_constraint(seed, copy):
    # T = 2 and the second sequence is the first (scaled by 1.5, so its matrix is 2.25 A,
    # inactive) or a duplicate: W = A / ||A||^2 for both norms.
    rng = np.random.default_rng(seed)
    X1 = rng.standard_normal((2, 3))
    c = 1.5 if copy == "scaled" else 1.0
    u = X1[0] - X1[1]  # makes token 0 optimal
    p = AttentionProblem(np.stack([X1, c * X1]), [1, 1], u)
    A = np.outer(X1[0] - X1[1], X1[0])
    expected = A / np.sum(A**2)
    for norm in ("fro", "nuc"):
        sol = solve_wsvm(p, norm=norm)
        np.testing.assert_allclose(sol.W, expected, rtol=0, atol=1e-7 * np.linalg.norm(expected))
        check_kkt(p, sol, norm=norm, rtol=1e-7)
    sol = solve_wsvm(p)
    np.testing.assert_allclose(sol.margin, np.linalg.norm(A), rtol=1e-12)
    if copy == "scaled":
        np.testing.assert_array_equal(sol.support, [[False, True], [False, False]])
        np.testing.assert_allclose(sol.dual[:, 1], [1 / np.sum(A**2), 0.0], atol=1e-15)
        np.testing.assert_allclose(sol.margins[1, 1], c**2, rtol=1e-12)
    else:
        np.testing.assert_allclose(sol.dual[:, 1].sum(), 1 / np.sum(A**2), rtol=1e-12)




@pytest.mark.parametrize("method", ["active-set", "cvxpy"])
def test_hand_2d(method, hand_2d):
    p = hand_2d
    np.testing.assert_array_equal(p.opt, [0, 1])
    # selection (0, 1): v = (2, 1) and (-4, 1), both active: w = (0, 1), duals (2/3, 1/3)
    sol = solve_wsvm(p, method=method)
    np.testing.assert_allclose(sol.W, [[0, 0], [1, 0]], atol=1e-8)
    np.testing.assert_allclose(sol.dual[[0, 1], [1, 0]], [2 / 3, 1 / 3], atol=1e-8)
    np.testing.assert_allclose(sol.norm_value, 1.0, rtol=1e-8)
    # selection (0, 0): w = (2, 1)/5 alone; sequence 1 has margin 1.4 (no support token)
    sol = solve_wsvm(p, [0, 0], method=method)
    np.testing.assert_allclose(sol.W, [[0.4, 0], [0.2, 0]], atol=1e-8)
    np.testing.assert_allclose(sol.margins[1, 1], 1.4, rtol=1e-8)
    assert sol.support_tokens() == [[1], []]
    np.testing.assert_allclose(sol.dual[:, 1], [0.2, 0], atol=1e-8)




def test_hand_3d(hand_3d):
    p = hand_3d
    sol = solve_wsvm(p)  # opt = (0, 0): w = (1, 1, 0), the middle tokens are the support
    np.testing.assert_allclose(sol.W[:, 0], [1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(sol.W[:, 1:], 0, atol=1e-12)
    assert sol.support_tokens() == [[1], [1]]
    np.testing.assert_allclose(sol.margins[1, 2], 2.0, rtol=1e-12)
    # selecting the middle token of sequence 1: both others active, w_(1,2) = (-1, -0.4),
    # duals 1.08 and 0.08
    sol = solve_wsvm(p, [0, 1])
    np.testing.assert_allclose(sol.W[:, 0], [1, -1, -0.4], atol=1e-12)
    np.testing.assert_allclose(sol.dual[1], [1.08, np.nan, 0.08], atol=1e-12)
    check_kkt(p, sol, rtol=1e-10)


# ----------------------------------------------------------------------- infeasibility
def opposite(extra=False):
    """Sequences 0 and the last have opposite constraint vectors under z = e_1."""
    seqs = [[[1.0, 0.0], [-1.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]]
    if extra:
        seqs.insert(1, [[0.0, 1.0], [0.0, -1.0]])
    n = len(seqs)
    return AttentionProblem(np.array(seqs), [1] * n, [1.0, 1.0], z=np.tile([1.0, 0.0], (n, 1)))


@pytest.mark.parametrize("method", ["active-set", "cvxpy"])
@pytest.mark.parametrize("extra", [False, True])
def test_infeasible_names_conflicting_sequences(method, extra):
    p = opposite(extra)
    conflict = (0, p.n - 1)
    sel = np.zeros(p.n, int)
    with pytest.raises(InfeasibleError, match=r"infeasible: sequences \[0, %d\]" % (p.n - 1)) as e:
        solve_wsvm(p, sel, method=method)
    assert e.value.sequences == conflict and isinstance(e.value, ValueError)
    with pytest.raises(InfeasibleError):
        solve_wsvm(p, sel, norm="nuc")


def test_infeasible_zero_constraint():
    p = make_family("random", n=4, T=4, d=8, seed=0)
    X = np.array(p.X)
    t = (p.opt[2] + 1) % p.T
    X[2, t] = X[2, p.opt[2]]  # a token equal to the selected one: constraint matrix 0
    with pytest.raises(InfeasibleError, match=f"seq 2 token {t} is zero") as e:
        solve_wsvm(AttentionProblem(X, p.y, p.u), p.opt)
    assert e.value.sequences == (2,)


@pytest.mark.parametrize("seed", range(3))
def test_infeasible_certificate_is_a_conflict(seed):
    # 30 * 7 constraints in R^{3x3}: infeasible; the named sequences alone must already conflict
    p = make_family("random", n=30, T=8, d=3, seed=seed)
    with pytest.raises(InfeasibleError) as e:
        solve_wsvm(p)
    seqs = np.array(e.value.sequences)
    assert 1 <= len(seqs) <= 10  # at most d^2 + 1 matrices are needed (Caratheodory)
    rows = np.concatenate([seqs, seqs[:1]]) if len(seqs) == 1 else seqs
    sub = AttentionProblem(p.X[rows], p.y[rows], p.u)
    with pytest.raises(InfeasibleError):
        solve_wsvm(sub, p.opt[rows])
    with pytest.raises(InfeasibleError):
        solve_wsvm(sub, p.opt[rows], method="cvxpy")


# -------------------------------------------------------------------- nuclear norm
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("family, kw", [FAMILY_CASES[0], FAMILY_CASES[1]])
def test_nuclear_norm(family, kw, seed):
    p = make_family(family, seed=seed, **kw)
    nuc = solve_wsvm(p, norm="nuc")
    fro = solve_wsvm(p)
    check_kkt(p, nuc, norm="nuc", rtol=1e-7)
    s_fro = np.linalg.svd(fro.W, compute_uv=False)
    assert nuc.norm_value <= s_fro.sum() * (1 + 1e-7)
    assert np.linalg.norm(nuc.W) >= fro.norm_value * (1 - 1e-7)
    # strong duality for ||W||_*: sum of multipliers = optimal value
    np.testing.assert_allclose(np.nansum(nuc.dual), nuc.norm_value, rtol=1e-6)
    assert nuc.rank() <= fro.rank()


# --------------------------------------------------------------------- decoder SVM
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("family, kw", [("joint", dict(n=20, T=4, d=8)),
                                         ("random", dict(n=6, T=8, d=10))])
def test_decoder_svm_kkt(family, kw, seed):
    p = make_family(family, seed=seed, **kw)
    sol = solve_decoder_svm(p)
    P = p.y[:, None] * p.X[np.arange(p.n), p.opt]
    m = P @ sol.u
    np.testing.assert_allclose(sol.margins, m, rtol=1e-12)
    assert m.min() >= 1 - 1e-10
    assert np.all(sol.dual >= 0)
    assert np.max(sol.dual * np.abs(m - 1)) <= 1e-10 * sol.dual.max()
    np.testing.assert_allclose(sol.u, sol.dual @ P, atol=1e-10 * np.linalg.norm(sol.u))
    np.testing.assert_array_equal(sol.support, m <= 1 + 1e-6)
    np.testing.assert_allclose(sol.margin, 1 / np.linalg.norm(sol.u), rtol=1e-12)
    ref = solve_decoder_svm(p, method="cvxpy")
    np.testing.assert_allclose(ref.u, sol.u, atol=1e-6 * np.linalg.norm(sol.u))
    assert sol.status == ref.status == "optimal"


def test_decoder_closed_form_and_infeasible():
    # points p_0 = (2, 0), p_1 = (0, 1): u = (1/2, 1)
    X = np.array([[[2.0, 0.0], [0.0, 0.0]], [[0.0, -1.0], [0.0, 0.0]]])
    p = AttentionProblem(X, [1, -1], [1.0, 1.0])
    sol = solve_decoder_svm(p)
    np.testing.assert_allclose(sol.u, [0.5, 1.0], rtol=1e-12)
    np.testing.assert_allclose(sol.dual, [0.25, 1.0], rtol=1e-12)
    # same token with opposite labels: y_i x_i are opposite points
    X = np.array([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    q = AttentionProblem(X, [1, -1], [1.0, 0.0])
    with pytest.raises(InfeasibleError, match="decoder SVM") as e:
        solve_decoder_svm(q, [0, 0])
    assert e.value.sequences == (0, 1)


# ------------------------------------------------------------------------ bad input
def test_tie_error_propagates(hand_2d):
    p = hand_2d
    X = np.array(p.X)
    X[1, 0, 1] = 1.0  # both tokens of sequence 1 now score 1
    tied = AttentionProblem(X, p.y, p.u, p.z)
    with pytest.raises(TieError, match="tied optimal token") as e:
        solve_wsvm(tied)
    assert e.value.sequences == (1,)
    with pytest.raises(TieError):
        solve_decoder_svm(tied)
    assert solve_wsvm(tied, [0, 1]).status == "optimal"  # an explicit selection needs no opt


@pytest.mark.parametrize("kwargs, match", [
    (dict(norm="l1"), "unknown norm 'l1'"),
    (dict(method="newton"), "unknown method 'newton'"),
    (dict(method="active-set", norm="nuc"), "Frobenius norm only"),
    (dict(tol=0.0), r"tol must be a number in \(0, 1\)"),
    (dict(tol=float("nan")), "tol must be"),
    (dict(selection=[0]), r"selection must have shape \(2,\)"),
    (dict(selection=[0, 2]), r"selection indices must lie in \[0, 2\)"),
    (dict(selection=[0.5, 1]), "integer token indices"),
])
def test_bad_arguments(kwargs, match, hand_2d):
    with pytest.raises(ValueError, match=match):
        solve_wsvm(hand_2d, **kwargs)


def test_nuclear_auto_refuses_huge():
    p = make_family("equal", n=200, T=16, d=32, seed=0)
    with pytest.raises(ValueError, match="NUC_AUTO_LIMIT"):
        solve_wsvm(p, norm="nuc")


@pytest.mark.parametrize("case", ["equal", "duplicated", "infeasible"])
def test_lawson_hanson_fallback(monkeypatch, case):
    # With no pivoting rounds allowed every restricted dual goes through the NNLS fallback;
    # it must give the same certified answer.
    import theory.svm as svm

    p = make_family("equal", n=40, T=6, d=8, seed=1)
    if case == "duplicated":
        p = AttentionProblem(np.concatenate([p.X, p.X]), np.concatenate([p.y, p.y]), p.u)
    if case == "infeasible":
        p = make_family("random", n=30, T=8, d=3, seed=0)
        with pytest.raises(InfeasibleError) as ref:
            solve_wsvm(p)
        monkeypatch.setattr(svm, "_MAX_PIVOTING", 0)
        with pytest.raises(InfeasibleError) as e:
            solve_wsvm(p)
        # Both certificates name a set of sequences that is infeasible on its own.
        for cert in (e.value, ref.value):
            rows = list(cert.sequences)
            assert rows and not is_feasible(p, p.opt[rows], rows=rows), rows
        return
    ref = solve_wsvm(p)
    monkeypatch.setattr(svm, "_MAX_PIVOTING", 0)
    sol = solve_wsvm(p)
    check_kkt(p, sol, rtol=1e-10)
    np.testing.assert_allclose(sol.W, ref.W, rtol=0, atol=1e-9 * ref.norm_value)


# ------------------------------------------------------------------------ extreme scales
def _dual_log2_sum(sol):
    """log2 of the sum of the multipliers in the data's units (they may not fit a float64)."""
    return np.log2(np.nansum(sol.dual)) + sol.dual_exponent


@pytest.mark.parametrize("method", ["active-set", "cvxpy"])
@pytest.mark.parametrize("c", [1e100, 1e-100, 1e150, 2.0 ** -500, 3.0])
def test_scaled_tokens_give_the_scaled_solution(method, c):
    # W_mm(c X) = W_mm(X) / c^2 for self-attention; u / c keeps the scores, hence opt
    p = make_family("equal", n=6, T=8, d=10, seed=0)
    ref = solve_wsvm(p, method=method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = solve_wsvm(AttentionProblem(p.X * c, p.y, p.u / c), method=method)
    assert sol.status == "optimal"
    # measured: 3.3e-16 relative on both paths at every scale
    np.testing.assert_allclose(sol.W * c * c, ref.W, rtol=0, atol=2e-15 * ref.norm_value)
    np.testing.assert_allclose(sol.norm_value * c * c, ref.norm_value, rtol=2e-15)
    np.testing.assert_array_equal(sol.support, ref.support)
    # sum dual = ||W||^2 in the data's units, whether or not the multipliers fit a float64
    np.testing.assert_allclose(_dual_log2_sum(sol), 2 * np.log2(sol.norm_value), rtol=0,
                               atol=1e-12)
    assert (sol.dual_exponent != 0) == any("outside the float64 range" in str(w.message)
                                           for w in caught)


@pytest.mark.parametrize("method", ["active-set", "cvxpy"])
def test_scaled_queries_cross_attention(method):
    p = make_family("equal", n=6, T=8, d=10, seed=0, attention="cross")
    ref = solve_wsvm(p, method=method)
    with pytest.warns(RuntimeWarning, match="dual_exponent"):
        sol = solve_wsvm(AttentionProblem(p.X, p.y, p.u, p.z * 1e200), method=method)
    np.testing.assert_allclose(sol.W * 1e200, ref.W, rtol=0, atol=2e-15 * ref.norm_value)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("c", [1e-100, 1e100])
def test_nuclear_norm_scales(seed, c):
    p = make_family("equal", n=4, T=4, d=5, seed=seed)
    ref = solve_wsvm(p, norm="nuc")
    sol = solve_wsvm(AttentionProblem(p.X * c, p.y, p.u / c), norm="nuc")
    # extreme data are solved normalised, ordinary ones in their own units, by an interior-point
    # method on a problem that is not strongly convex: measured 6e-11 relative in ||W||_*
    # and 6e-7 in W (seeds 0-2)
    np.testing.assert_allclose(sol.norm_value * c * c, ref.norm_value, rtol=3e-10)
    np.testing.assert_allclose(sol.W * c * c, ref.W, rtol=0, atol=3e-6 * ref.norm_value)
    np.testing.assert_allclose(_dual_log2_sum(sol), np.log2(sol.norm_value), rtol=0, atol=1e-9)


def test_decoder_scales():
    p = make_family("joint", n=20, T=4, d=8, seed=0)
    ref = solve_decoder_svm(p)
    with pytest.warns(RuntimeWarning, match="dual_exponent"):  # multipliers about 1e-400
        sol = solve_decoder_svm(AttentionProblem(p.X * 1e200, p.y, p.u))
    np.testing.assert_allclose(sol.u * 1e200, ref.u, rtol=0, atol=2e-15 * ref.norm_value)


@pytest.mark.parametrize("c, where", [(1e200, "2\\*\\*-13"), (1e-200, "2\\*\\*13")])
def test_solution_outside_float64_raises(c, where):
    p = make_family("equal", n=6, T=8, d=10, seed=0)
    q = AttentionProblem(p.X * c, p.y, p.u / c)
    for method in ("active-set", "cvxpy"):
        with pytest.raises(ValueError, match=f"largest entry is about {where}.*outside the "
                                             "float64 range; rescale"):
            solve_wsvm(q, method=method)


def test_token_differences_overflow():
    X = np.array([[[1e308, 0.0], [-1e308, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    p = AttentionProblem(X, [1, 1], [1e-10, 0.0], z=[[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="differences of tokens .* overflow float64"):
        solve_wsvm(p, [0, 0])


# ----------------------------------------------------------------- untrustworthy output
def test_inaccurate_solution_violating_a_constraint_raises(monkeypatch):
    import theory.svm as svm

    p = make_family("equal", n=5, T=4, d=6, seed=0)
    real = svm._solve_cvxpy
    monkeypatch.setattr(svm, "_solve_cvxpy",
                        lambda C, norm, tol, what: (lambda W, d, m: (-W, d, m))(
                            *real(C, norm, tol, what)))
    with pytest.raises(SolverError, match=r"returned an inaccurate solution \(KKT residual "
                                          r".*\) that violates the constraint of seq 0 token"):
        solve_wsvm(p, method="cvxpy")


# ----------------------------------------------------------------------- shared results
def test_solutions_share_one_base(hand_2d):
    p = hand_2d
    w, u = solve_wsvm(p), solve_decoder_svm(p)
    for sol in (w, u):
        assert isinstance(sol, SVMSolution)
        assert sol.margin == 1 / sol.norm_value and sol.dual_exponent == 0
        assert set(sol.kkt) == {"primal", "dual", "complementarity", "stationarity", "w_error"}
        assert sol.w_error == sol.kkt["w_error"] <= 1e-7
        for arr in (sol.margins, sol.support, sol.dual, sol.selection):
            assert not arr.flags.writeable
    assert np.isnan(solve_wsvm(p, norm="nuc").w_error)


@pytest.mark.parametrize("seed", range(3))
def test_is_feasible_matches_the_solver(seed):
    p = make_family("random", n=6, T=4, d=3, seed=seed)
    rng = np.random.default_rng(seed)
    for sel in rng.integers(0, p.T, (8, p.n)):
        try:
            solve_wsvm(p, sel)
            expected = True
        except InfeasibleError:
            expected = False
        assert is_feasible(p, sel) is expected
        assert is_feasible(p, sel[:2], rows=[0, 1]) is is_feasible(
            AttentionProblem(p.X[:2], p.y[:2], p.u), sel[:2])


@pytest.mark.parametrize("call, exc, match", [
    (lambda p: solve_wsvm(None), TypeError, "problem must be an AttentionProblem, got NoneType"),
    (lambda p: solve_decoder_svm("p"), TypeError, "problem must be an AttentionProblem, got str"),
    (lambda p: solve_wsvm(p, tol="a"), TypeError, "tol must be a real number, got 'a'"),
    (lambda p: solve_wsvm(p, tol=True), TypeError, "tol must be a real number, got True"),
    (lambda p: solve_wsvm(p, norm=["fro"]), ValueError, r"unknown norm \['fro'\]"),
    (lambda p: solve_wsvm(p, method=None), ValueError, "unknown method None"),
    (lambda p: solve_wsvm(p, ["0", "1"]), TypeError, "integer token indices, got strings"),
    (lambda p: solve_wsvm(p, [True, False]), TypeError, "got booleans"),
    (lambda p: is_feasible(p, [0], rows=[5]), ValueError, r"rows must lie in \[0, 2\)"),
    (lambda p: is_feasible(p, None, rows=[[0]]), ValueError, "nonempty 1-D array"),
    (lambda p: is_feasible(p, [0, 1], rows=[0]), ValueError, r"shape \(1,\) to match rows"),
])
def test_bad_types(call, exc, match, hand_2d):
    with pytest.raises(exc, match=match):
        call(hand_2d)
