"""Exceptions raised by the theory package.

Both derive from :class:`ValueError` so that callers who only care about "bad
input" can catch one type, while callers who need the detail can inspect the
``sequences`` attribute.
"""

from __future__ import annotations

__all__ = ["TieError", "InfeasibleError", "SolverError"]


class TieError(ValueError):
    """The top token score of one or more sequences is not unique.

    The max-margin theory needs a unique optimal token per sequence; a tie is an
    input error, not something to break arbitrarily.

    Attributes
    ----------
    sequences : tuple of int
        Indices of the sequences whose two best scores agree within tolerance.
    """

    def __init__(self, message: str, sequences=()):
        super().__init__(message)
        self.sequences = tuple(int(i) for i in sequences)


class InfeasibleError(ValueError):
    """A hard-margin problem has no feasible point.

    Attributes
    ----------
    sequences : tuple of int
        Sequences involved in the conflicting constraints (as far as the solver
        could isolate them).
    """

    def __init__(self, message: str, sequences=()):
        super().__init__(message)
        self.sequences = tuple(int(i) for i in sequences)


class SolverError(RuntimeError):
    """A solver did not reach a solution that can be trusted.

    Raised, for example, when an interior-point solver returns an inaccurate
    solution that violates a constraint: such a ``W`` is never handed out.
    """
