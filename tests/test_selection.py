"""Locally optimal selections: hand-built cases, the definition checked by brute force, and the
search limits."""

import itertools

import numpy as np
import pytest

from theory.families import make_family
from theory import (
    InfeasibleError,
    is_locally_optimal,
    locally_optimal_selections,
    solve_decoder_svm,
    solve_wsvm,
)




def test_hand_2d_global_and_local(hand_2d):
    p = hand_2d
    # (0, 1) = opt; (0, 0): sequence 1 selects its low token but has no support token;
    # (1, 0), (1, 1): sequence 0 selects its low token while the high one is a support token.
    expected = {(0, 1): True, (0, 0): True, (1, 0): False, (1, 1): False}
    for sel, ok in expected.items():
        assert is_locally_optimal(p, sel) is ok
    found = locally_optimal_selections(p)
    np.testing.assert_array_equal(found, [[0, 1], [0, 0]])  # opt first
    np.testing.assert_array_equal(locally_optimal_selections(p, max_count=1), [p.opt])


def test_hand_3d_infeasible_selection_is_not_locally_optimal(hand_3d):
    # the middle token of sequence 0 lies between the other two
    p = hand_3d
    with pytest.raises(InfeasibleError) as e:
        solve_wsvm(p, [1, 0])
    assert e.value.sequences == (0,)
    assert not is_locally_optimal(p, [1, 0])
    np.testing.assert_array_equal(locally_optimal_selections(p), [[0, 0]])


def definition(problem, sel):
    """docs/theory.md §2 definition, from the W-SVM margins (support = margin 1 within 1e-6)."""
    try:
        sol = solve_wsvm(problem, sel)
    except InfeasibleError:
        return False
    g = problem.scores
    support = np.abs(np.nan_to_num(sol.margins, nan=np.inf) - 1) <= 1e-6
    return all(np.all(g[i, support[i]] < g[i, sel[i]]) for i in range(problem.n))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(3, 3, 2), (3, 4, 3), (2, 5, 2)])
def test_exhaustive_search_matches_brute_force(shape, seed):
    n, T, d = shape
    p = make_family("random", n=n, T=T, d=d, seed=seed)
    brute = [s for s in itertools.product(range(T), repeat=n) if definition(p, np.array(s))]
    found = locally_optimal_selections(p, progress=False)
    assert sorted(map(tuple, found.tolist())) == sorted(brute)
    assert len({tuple(s) for s in found.tolist()}) == len(found)
    try:
        solve_wsvm(p)
    except InfeasibleError:
        assert tuple(p.opt) not in brute
    else:  # a feasible global selection is always locally optimal, and comes first
        np.testing.assert_array_equal(found[0], p.opt)


@pytest.mark.parametrize("seed", range(3))
def test_equal_score_opt_is_locally_optimal(seed):
    p = make_family("equal", n=3, T=3, d=4, seed=seed)
    found = locally_optimal_selections(p)
    assert any(np.array_equal(s, p.opt) for s in found)
    for s in found:
        assert is_locally_optimal(p, s)


def test_precomputed_solution(hand_2d):
    p = hand_2d
    sol = solve_wsvm(p, [0, 0])
    assert is_locally_optimal(p, [0, 0], solution=sol)
    with pytest.raises(ValueError, match="same selection"):
        is_locally_optimal(p, [0, 1], solution=sol)


def test_limits(hand_2d):
    p = make_family("random", n=8, T=6, d=4, seed=0)
    with pytest.raises(ValueError, match=r"T\^n = 6\^8 = 1,679,616 selections exceeds limit"):
        locally_optimal_selections(p)
    with pytest.raises(ValueError, match="max_count must be a positive integer"):
        locally_optimal_selections(hand_2d, max_count=0)
    with pytest.raises(ValueError, match=r"selection must have shape \(2,\)"):
        is_locally_optimal(hand_2d, [0, 0, 0])


def test_tol_reaches_every_solve(monkeypatch, hand_2d):
    # locally_optimal_selections must pass its tol on to is_locally_optimal's W-SVM solves
    import theory.selection as selection

    seen = []
    real = selection.solve_wsvm

    def spy(problem, sel, **kw):
        seen.append(kw.get("tol"))
        return real(problem, sel, **kw)

    monkeypatch.setattr(selection, "solve_wsvm", spy)
    found = locally_optimal_selections(hand_2d, tol=1e-6)
    assert len(found) == 2 and seen and set(seen) == {1e-6}


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(max_count="a"), ValueError, "max_count must be a positive integer or None, got 'a'"),
    (dict(max_count=True), ValueError, "max_count must be a positive integer or None, got True"),
    (dict(limit=0), ValueError, "limit must be a positive integer, got 0"),
    (dict(tol=2.0), ValueError, r"tol must be a number in \(0, 1\)"),
])
def test_search_argument_errors(kwargs, exc, match, hand_2d):
    with pytest.raises(exc, match=match):
        locally_optimal_selections(hand_2d, **kwargs)


def test_is_locally_optimal_type_errors(hand_2d):
    with pytest.raises(TypeError, match="problem must be an AttentionProblem, got list"):
        is_locally_optimal([1], [0, 0])
    with pytest.raises(TypeError, match="solution must be a MarginSolution, got DecoderSolution"):
        is_locally_optimal(hand_2d, [0, 1], solution=solve_decoder_svm(hand_2d))
