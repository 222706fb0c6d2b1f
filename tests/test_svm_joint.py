"""Relaxed joint W-SVM (SPEC 2, decoder SVM paragraph): KKT checked from the raw data."""

import numpy as np
import pytest

from theory.families import gaussian_joint
from theory import AttentionProblem, solve_decoder_svm, solve_joint_wsvm, solve_wsvm

from .test_svm import constraint_matrices


@pytest.mark.parametrize("seed", range(4))
def test_joint_wsvm_kkt(seed):
    p = gaussian_joint(n=12, T=3, d=6, seed=seed)
    dec = solve_decoder_svm(p)
    sol = solve_joint_wsvm(p, dec)
    induced = AttentionProblem(p.X, p.y, dec.u, p.z)
    np.testing.assert_array_equal(sol.selection, induced.opt)
    sel = sol.selection
    A = constraint_matrices(p, sel)
    mask = np.ones((p.n, p.T), bool)
    mask[np.arange(p.n), sel] = False
    b = np.where(dec.support, 1.0, 0.0)[:, None] * np.ones(p.T)
    m = np.einsum("itab,ab->it", A, sol.W)
    a = np.where(mask, sol.dual, 0.0)
    tol = 1e-7
    assert np.all(m[mask] >= b[mask] - tol)  # primal: 1 on decoder support vectors, 0 elsewhere
    assert np.all(a >= 0)
    assert np.max(a[mask] * np.abs(m[mask] - b[mask])) <= tol * a.max()
    G = np.einsum("it,itab->ab", a, A)
    np.testing.assert_allclose(sol.W, G, atol=tol * np.linalg.norm(sol.W))
    # relaxing constraints can only shorten the solution
    full = solve_wsvm(induced)
    assert sol.norm_value <= full.norm_value * (1 + 1e-9)


def test_joint_equals_unrelaxed_when_every_sequence_is_a_support_vector():
    # two sequences mirrored through the origin: both are decoder support vectors
    X1 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    X = np.stack([X1, -X1 + 0.0])
    p = AttentionProblem(X, [1, -1], [1.0, 0.2, 0.0])
    dec = solve_decoder_svm(p)
    assert dec.support.all()
    sol = solve_joint_wsvm(p, dec)
    ref = solve_wsvm(AttentionProblem(p.X, p.y, dec.u, p.z))
    np.testing.assert_allclose(sol.W, ref.W, rtol=1e-6, atol=1e-8)
