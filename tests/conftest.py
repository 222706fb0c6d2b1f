"""Hand-built instances shared by the test files, with their closed-form solutions.

Each instance is a fixture; those with a size parameter are factory fixtures that
return the builder (``two_sequence_problem(a)``).
"""

import numpy as np
import pytest

from theory import AttentionProblem


@pytest.fixture
def hand_2d():
    """Cross-attention with ``z_i = e_1``, so ``W z_i = W[:, 0] = w`` and the
    constraints read ``(x_sel - x_t) . w >= 1``; scores use ``u = e_2``.

    ``opt = (0, 1)`` with ``w = (0, 1)`` (both constraints active, duals 2/3 and
    1/3); selection ``(0, 0)`` gives ``w = (2, 1) / 5``, sequence 1 at margin 1.4.
    """
    X = np.array([[[1.0, 1.0], [-1.0, 0.0]], [[4.0, 0.0], [0.0, 1.0]]])
    return AttentionProblem(X, [1, 1], [0.0, 1.0], z=[[1.0, 0.0], [1.0, 0.0]])


@pytest.fixture
def hand_3d():
    """``z_i = e_1`` and ``u = (1, 1, 0)``; sequence 0 lives on coordinate 0, sequence
    1 on coordinates (1, 2).

    ``opt = (0, 0)`` with ``w = (1, 1, 0)`` (the middle tokens are the support);
    selecting token 1 of sequence 0 is infeasible (it lies between the other two).
    """
    X = np.array([
        [[1.0, 0, 0], [0, 0, 0], [-1.0, 0, 0]],
        [[0, 1.0, 0], [0, 0, 0], [0, -1.0, 5.0]],
    ])
    return AttentionProblem(X, [1, 1], [1.0, 1.0, 0.0], z=[[1.0, 0, 0], [1.0, 0, 0]])


def _two_sequence(a):
    """Sequence 0: tokens ``(a e1, 0)``, label +1; sequence 1: ``(-e1, e1)``, label -1;
    ``u = e1`` (self-attention).

    Constraints ``a^2 W11 >= 1`` and ``2 W11 >= 1``, so
    ``W_mm = max(1/a^2, 1/2) e1 e1^T`` with margins ``(a^2 W11, 2 W11)``; the decoder
    SVM has ``u_mm = e1`` for ``a >= 1``.
    """
    X = np.array([[[a, 0.0], [0.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]])
    return AttentionProblem(X, [1, -1], [1.0, 0.0])


@pytest.fixture
def two_sequence_problem():
    """Builder ``a -> AttentionProblem`` of the two-sequence instance (see ``_two_sequence``)."""
    return _two_sequence


def _orthogonal(a, b):
    """Sequence 0 lives on ``e1``, sequence 1 on ``e2`` (labels +1, ``u = e1 + e2``).

    Constraints ``a^2 W11 >= 1`` and ``b^2 W22 >= 1``: ``W_mm = diag(1/a^2, 1/b^2, 0)``,
    both margins 1. Selecting token 1 of sequence 0 flips its constraint to
    ``-a^2 W11 >= 1``, with the same norm.
    """
    X = np.zeros((2, 2, 3))
    X[0, 0, 0], X[1, 0, 1] = a, b
    return AttentionProblem(X, [1, 1], [1.0, 1.0, 0.0])


@pytest.fixture
def orthogonal_problem():
    """Builder ``(a, b) -> AttentionProblem`` of the orthogonal instance (see ``_orthogonal``)."""
    return _orthogonal
