"""Seeded synthetic instance families (SPEC section 7).

Every generator returns a :class:`theory.AttentionProblem`. The choices the
paper leaves open (where the optimal token sits, noise scales) are keyword
arguments with documented defaults.
"""

from __future__ import annotations

import numpy as np

from theory import AttentionProblem

__all__ = [
    "equal_score",
    "overparam_random",
    "gaussian_joint",
    "general_random",
    "FAMILIES",
    "make_family",
]


def _unit_rows(g):
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def _labels(rng, n):
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def _queries(rng, X, attention):
    if attention == "self":
        return None
    if attention == "cross":
        return _unit_rows(rng.standard_normal((X.shape[0], X.shape[2])))
    raise ValueError(f"attention must be 'self' or 'cross', got {attention!r}")


def equal_score(n=6, T=8, d=10, seed=0, *, noise=1.0, opt_position="random", attention="self"):
    """Equal-score family (Tarzanagh et al., Assumption B): global convergence holds.

    ``u = e_1``; coordinate 1 of every token is 0 except on the optimal token,
    where it is ``y_i``, so ``gamma_opt = 1`` and every other score is 0. The
    other ``d - 1`` coordinates are i.i.d. ``N(0, noise^2 / (d - 1))`` (tokens of
    norm about ``noise``).

    Parameters
    ----------
    n, T, d : int
        Sequences, tokens per sequence, dimension (``d >= 2``).
    seed : int
        Seed of the generator.
    noise : float, default 1.0
        Scale of the non-score coordinates (reconstruction: the paper does not state it).
    opt_position : {"random"} or int, default "random"
        Where the optimal token sits: uniformly at random per sequence, or a fixed index.
    attention : {"self", "cross"}, default "self"
        Self-attention (query = first token) or unit-norm Gaussian cross-attention queries.

    Returns
    -------
    AttentionProblem

    Examples
    --------
    >>> p = equal_score(3, 4, 5, seed=1)
    >>> sorted(set((p.scores.ravel() + 0.0).tolist()))
    [0.0, 1.0]
    """
    if d < 2:
        raise ValueError(f"equal_score needs d >= 2, got d={d}")
    rng = np.random.default_rng(seed)
    y = _labels(rng, n)
    X = np.zeros((n, T, d))
    X[:, :, 1:] = rng.standard_normal((n, T, d - 1)) * (noise / np.sqrt(d - 1))
    if opt_position == "random":
        opt = rng.integers(0, T, size=n)
    else:
        if not 0 <= int(opt_position) < T:
            raise ValueError(f"opt_position must lie in [0, {T}), got {opt_position}")
        opt = np.full(n, int(opt_position))
    X[np.arange(n), opt, 0] = y
    u = np.zeros(d)
    u[0] = 1.0
    return AttentionProblem(X, y, u, _queries(rng, X, attention))


def overparam_random(n=4, T=4, d=None, seed=0, *, attention="cross"):
    """Over-parameterised random family: unit-norm Gaussian tokens and queries, ``d >= n T``.

    ``d`` defaults to ``n * T``; ``u`` is a unit-norm Gaussian vector and labels are
    random signs. The default is cross-attention with unit-norm Gaussian queries,
    as in SPEC 7 ("tokens and queries").
    """
    d = n * T if d is None else d
    rng = np.random.default_rng(seed)
    X = _unit_rows(rng.standard_normal((n, T, d)))
    y = _labels(rng, n)
    u = _unit_rows(rng.standard_normal(d))
    return AttentionProblem(X, y, u, _queries(rng, X, attention))


def gaussian_joint(n=20, T=4, d=8, seed=0, *, signal=2.0, noise=0.5, opt_position="random",
                   attention="self"):
    """Gaussian-like family for joint (u, W) training.

    ``x_{i,opt} = y_i mu + noise * g`` and the other tokens are ``noise * g``, with
    ``mu = signal * e_1`` and ``g`` standard Gaussian. The problem's fixed decoder is
    ``u = mu / ||mu||`` (the direction joint training is expected to find); joint
    runs start from ``u_0 = 0`` and ignore it.
    """
    rng = np.random.default_rng(seed)
    y = _labels(rng, n)
    X = noise * rng.standard_normal((n, T, d))
    if opt_position == "random":
        opt = rng.integers(0, T, size=n)
    else:
        opt = np.full(n, int(opt_position))
    mu = np.zeros(d)
    mu[0] = signal
    X[np.arange(n), opt] += y[:, None] * mu
    return AttentionProblem(X, y, mu / np.linalg.norm(mu), _queries(rng, X, attention))


def general_random(n=6, T=8, d=10, seed=0, *, attention="self"):
    """General random family: unit-norm Gaussian tokens, random unit ``u`` and labels.

    With ``(n, T, d) = (6, 8, 10)`` (the predecessor's experiment) GD from a small
    start can converge to locally optimal selections.
    """
    rng = np.random.default_rng(seed)
    X = _unit_rows(rng.standard_normal((n, T, d)))
    y = _labels(rng, n)
    u = _unit_rows(rng.standard_normal(d))
    return AttentionProblem(X, y, u, _queries(rng, X, attention))


FAMILIES = {
    "equal": equal_score,
    "overparam": overparam_random,
    "joint": gaussian_joint,
    "random": general_random,
}


def make_family(name, **kwargs):
    """Build an instance of the family ``name`` (a key of :data:`FAMILIES`)."""
    try:
        fn = FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown family {name!r}; expected one of {sorted(FAMILIES)}") from None
    return fn(**kwargs)
