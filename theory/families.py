"""Seeded synthetic instance families and their registry (docs/theory.md §7).

Every generator returns an :class:`~theory.problem.AttentionProblem`. The choices
the paper leaves open (where the optimal token sits, noise scales) are keyword
arguments with documented defaults. :data:`FAMILIES` maps the names used by the
command lines (``--kind``) to the generators; adding a family means adding its
function here and one entry to :data:`FAMILIES`.
"""

from __future__ import annotations

import numbers

import numpy as np

from .problem import AttentionProblem

__all__ = [
    "equal_score",
    "overparam_random",
    "gaussian_joint",
    "general_random",
    "FAMILIES",
    "make_family",
]


def _size(name, value, low):
    """``value`` as an int at least ``low``; bool and non-integers are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def _scale(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)


def _opt_tokens(rng, n, T, opt_position):
    if isinstance(opt_position, str):
        if opt_position != "random":
            raise ValueError(f"opt_position must be 'random' or a token index, got "
                             f"{opt_position!r}")
        return rng.integers(0, T, size=n)
    k = _size("opt_position", opt_position, 0)
    if k >= T:
        raise ValueError(f"opt_position must lie in [0, {T}), got {k}")
    return np.full(n, k)


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

    Raises
    ------
    TypeError, ValueError
        Non-integer sizes, ``d < 2``, a bad ``noise``, ``opt_position`` or ``attention``.

    Examples
    --------
    >>> p = equal_score(3, 4, 5, seed=1)
    >>> sorted(set((p.scores.ravel() + 0.0).tolist()))
    [0.0, 1.0]
    """
    n, T, d = _size("n", n, 1), _size("T", T, 1), _size("d", d, 2)
    noise = _scale("noise", noise)
    rng = np.random.default_rng(seed)
    y = _labels(rng, n)
    X = np.zeros((n, T, d))
    X[:, :, 1:] = rng.standard_normal((n, T, d - 1)) * (noise / np.sqrt(d - 1))
    opt = _opt_tokens(rng, n, T, opt_position)
    X[np.arange(n), opt, 0] = y
    u = np.zeros(d)
    u[0] = 1.0
    return AttentionProblem(X, y, u, _queries(rng, X, attention))


def overparam_random(n=4, T=4, d=None, seed=0, *, attention="cross"):
    """Over-parameterised random family: unit-norm Gaussian tokens and queries, ``d >= n T``.

    ``d`` defaults to ``n * T``; ``u`` is a unit-norm Gaussian vector and labels are
    random signs. The default is cross-attention with unit-norm Gaussian queries,
    as in docs/theory.md §7 ("tokens and queries").

    Examples
    --------
    >>> p = overparam_random(2, 3, seed=0)
    >>> p.d, p.self_attention
    (6, False)
    """
    n, T = _size("n", n, 1), _size("T", T, 1)
    d = n * T if d is None else _size("d", d, 1)
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

    Examples
    --------
    >>> p = gaussian_joint(4, 3, 2, seed=0, opt_position=1)
    >>> p.opt.tolist(), p.u.tolist()
    ([1, 1, 1, 1], [1.0, 0.0])
    """
    n, T, d = _size("n", n, 1), _size("T", T, 1), _size("d", d, 1)
    signal, noise = _scale("signal", signal), _scale("noise", noise)
    rng = np.random.default_rng(seed)
    y = _labels(rng, n)
    X = noise * rng.standard_normal((n, T, d))
    opt = _opt_tokens(rng, n, T, opt_position)
    mu = np.zeros(d)
    mu[0] = signal
    X[np.arange(n), opt] += y[:, None] * mu
    return AttentionProblem(X, y, mu / np.linalg.norm(mu), _queries(rng, X, attention))


def general_random(n=6, T=8, d=10, seed=0, *, attention="self"):
    """General random family: unit-norm Gaussian tokens, random unit ``u`` and labels.

    With ``(n, T, d) = (6, 8, 10)`` (the predecessor's experiment) GD from a small
    start can converge to locally optimal selections.

    Examples
    --------
    >>> general_random(seed=3).opt.shape
    (6,)
    """
    n, T, d = _size("n", n, 1), _size("T", T, 1), _size("d", d, 1)
    rng = np.random.default_rng(seed)
    X = _unit_rows(rng.standard_normal((n, T, d)))
    y = _labels(rng, n)
    u = _unit_rows(rng.standard_normal(d))
    return AttentionProblem(X, y, u, _queries(rng, X, attention))


#: Family name (the command lines' ``--kind``) -> generator.
FAMILIES = {
    "equal": equal_score,
    "overparam": overparam_random,
    "joint": gaussian_joint,
    "random": general_random,
}


def make_family(name, **kwargs):
    """Build an instance of the family ``name`` (a key of :data:`FAMILIES`).

    Parameters
    ----------
    name : str
        Family name.
    **kwargs
        Passed to the generator.

    Returns
    -------
    AttentionProblem

    Raises
    ------
    ValueError
        Unknown family name (or bad arguments, from the generator).

    Examples
    --------
    >>> make_family("equal", n=2, T=3, d=4, seed=0)
    AttentionProblem(n=2, T=3, d=4, self-attention)
    >>> make_family("gauss")
    Traceback (most recent call last):
    ...
    ValueError: unknown family 'gauss'; expected one of ['equal', 'joint', 'overparam', 'random']
    """
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[name](**kwargs)
